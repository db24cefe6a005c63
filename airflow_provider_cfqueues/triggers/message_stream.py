"""
The message trigger's shared stream (Airflow 3.3+, ``ack="persisted"``).

The watchers of one queue in a triggerer share one pull loop (:class:`~.queue_loop.QueueLoop`).
Airflow makes one :class:`MessageStreamProducer` per shared-stream group (per spelling of the queue
and connection); each is a tap on the queue's loop: it hands Airflow the batches to broadcast to the
group's watchers, and gives back how Airflow resolved them. The loop settles each message once every
tap has (one ack request per advance, with the actions
:mod:`~airflow_provider_cfqueues.consume.fate` decides).

One raw event per batch, not per message: Airflow 3.3's scheduler gives an asset-triggered run only
the asset events stored up to the first one it saw, and drops the queue entry of the rest, which then
wait for the next event (apache/airflow#56050; fixed by apache/airflow#70972). A burst fired message
by message would start a run for its first message only. Per-message settlement survives: each
watcher fires one event with the messages of the batch it wants and marks them taken on the shared
raw event, so a message nobody took is handled as a rejection, alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from .._compat import SHARED_STREAMS, StreamProducerBase, conf
from ..consume.fate import DEFAULT_ACK_TIMEOUT
from .queue_loop import Directory, LoopBatch, StreamedBatch, Tap, current_directory

#: Airflow's ``[triggerer] shared_stream_subscriber_queue_size`` default
DEFAULT_SUBSCRIBER_QUEUE_SIZE = 1024


def shared_streams_available() -> bool:
    """Whether this Airflow has shared streams with an ack channel (3.3+)."""
    return SHARED_STREAMS


def triggerer_ack_timeout() -> float:
    """``[triggerer] shared_stream_ack_timeout`` of this process's Airflow configuration."""
    return float(conf.getfloat("triggerer", "shared_stream_ack_timeout", fallback=DEFAULT_ACK_TIMEOUT))


#: messages the shared loop of one queue keeps leased and unsettled, at most (or one event's worth)
MAX_IN_FLIGHT = 1_000


def triggerer_queue_size() -> int:
    """``[triggerer] shared_stream_subscriber_queue_size``: events a watcher may have waiting."""
    return int(conf.getint("triggerer", "shared_stream_subscriber_queue_size", fallback=DEFAULT_SUBSCRIBER_QUEUE_SIZE))


def triggerer_directory() -> Directory:
    """The loops of a triggerer process, with its configuration."""
    return Directory(
        ack_timeout=triggerer_ack_timeout(),
        max_in_flight=MAX_IN_FLIGHT,
        max_batches_in_flight=triggerer_queue_size(),
    )


class MessageStreamProducer(StreamProducerBase):  # type: ignore[misc]
    """
    The broker side of one shared-stream group: a tap on the loop of the group's queue.

    Airflow builds it from one watcher's arguments; it reads only the queue, the account and the
    connection from them (how the queue is pulled and settled is the loop's, from every watcher).

    :param conn_id: the Airflow connection.
    :param account_id: the account id (``None``: the connection's).
    :param queue: the queue as the group's watchers spell it.
    """

    def __init__(self, conn_id: str, account_id: str | None, queue: str | None) -> None:
        self.route = (conn_id, account_id, queue)
        self.tap: Tap | None = None

    async def open_stream(self) -> AsyncIterator[tuple[StreamedBatch, LoopBatch]]:
        """Yield ``(raw event, batch)`` for Airflow to broadcast and hand back to :meth:`advance`."""
        loop = await current_directory(triggerer_directory).loop_for(*self.route)
        self.tap = loop.attach(self.route)
        try:
            async for batch in self.tap.stream():
                yield batch.streamed, batch
        finally:
            self.tap.close()

    async def advance(self, batch: Sequence[Any]) -> None:
        """Hand Airflow's ``AdvanceItem`` s to the loop; never raises (that would end every watcher)."""
        if self.tap is not None:
            await self.tap.resolve((item.broker_payload, bool(item.outcome.failed)) for item in batch)

    async def aclose(self) -> None:
        """Airflow's last call on the group: the tap is closed (once), and the loop with its last member."""
        if self.tap is not None:
            self.tap.close()
            await self.tap.loop.wait_closed()
