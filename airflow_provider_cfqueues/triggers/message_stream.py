"""
The message trigger's shared stream (Airflow 3.3+, ``ack="persisted"``).

The watchers of one queue in a triggerer share one pull loop: :class:`MessageStreamProducer` pulls
up to ``max_messages_per_event`` messages, hands Airflow the batch (its leases as the broker
payload) to broadcast to every watcher, and, once every watcher that was online has resolved it
(its asset event stored, or the batch rejected), settles each message: one ack request per advance,
with the actions :mod:`~airflow_provider_cfqueues.api.stream_advance` decides.

One raw event per batch, not per message: Airflow 3.3's scheduler gives an asset-triggered run only
the asset events stored up to the first one it saw, and drops the queue entry of the rest, which then
wait for the next event (apache/airflow#56050; fixed by apache/airflow#70972). A burst fired message
by message would start a run for its first message only. Per-message settlement survives: each
watcher fires one event with the messages of the batch it wants and marks them taken on the shared
raw event, so a message nobody took is handled as a rejection, alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._compat import conf, shared_stream_producer_base
from ..api.attempts import AttemptBudget, MessageRetryDelay
from ..api.errors import (
    CloudflareQueuesAckError,
    CloudflareQueuesError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesPushError,
    CloudflareQueuesValidationError,
)
from ..api.flows import Collected
from ..api.models import PulledMessage
from ..api.stream_advance import (
    DEFAULT_ACK_TIMEOUT,
    AdvancePlan,
    Resolution,
    check_lease_outlasts_ack_window,
    plan_advance,
    resolve_batch,
)
from ..hooks.queues import CloudflareQueuesHook
from .polling import PollSchedule, poll_messages

#: Airflow's ``[triggerer] shared_stream_subscriber_queue_size`` default
DEFAULT_SUBSCRIBER_QUEUE_SIZE = 1024


def shared_streams_available() -> bool:
    """Whether this Airflow has shared streams with an ack channel (3.3+)."""
    return shared_stream_producer_base() is not None


def triggerer_ack_timeout() -> float:
    """``[triggerer] shared_stream_ack_timeout`` of this process's Airflow configuration."""
    return float(conf.getfloat("triggerer", "shared_stream_ack_timeout", fallback=DEFAULT_ACK_TIMEOUT))


def triggerer_cohort_grace_period() -> float:
    """``[triggerer] shared_stream_cohort_grace_period``: how long a new loop waits for its watchers."""
    return float(conf.getfloat("triggerer", "shared_stream_cohort_grace_period", fallback=0.0))


#: messages the shared loop of one queue keeps leased and unsettled, at most (or one event's worth)
MAX_IN_FLIGHT = 1_000


def triggerer_queue_size() -> int:
    """``[triggerer] shared_stream_subscriber_queue_size``: events a watcher may have waiting."""
    return int(conf.getint("triggerer", "shared_stream_subscriber_queue_size", fallback=DEFAULT_SUBSCRIBER_QUEUE_SIZE))


@dataclass(frozen=True)
class StreamedBatch:
    """
    The raw event every watcher of the queue receives: a batch of messages, without their leases.

    :param queue: the queue as the watchers named it.
    :param queue_id: its id.
    :param messages: the messages as in the event payload (``id``, ``body``, ``attempts``, ...).
    :param taken: ids of the messages a watcher fired (each watcher adds those it wants; the
        producer reads them once every watcher has resolved the batch).
    """

    queue: str | None
    queue_id: str | None
    messages: tuple[dict[str, Any], ...]
    taken: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class LeasedBatch:
    """
    The broker payload of one raw event: the batch the watchers saw and the leases behind it.

    :param streamed: the raw event.
    :param messages: the pulled messages, in the same order.
    """

    streamed: StreamedBatch
    messages: list[PulledMessage]


@dataclass(frozen=True)
class StreamSettings:
    """
    What the shared loop of one queue pulls and how it settles: the fields of the trigger that go
    into its ``shared_stream_key`` (watchers that agree on all of them share one loop).

    :param conn_id: the Airflow connection.
    :param account_id: account id (``None``: the connection's).
    :param queue: queue id or name.
    :param batch_size: messages per pull.
    :param max_messages_per_event: messages gathered (several pulls) into one raw event.
    :param visibility_timeout: seconds each pulled message stays leased.
    :param schedule: how often to pull.
    :param on_rejected: what to do with a message no watcher wanted.
    :param poison_queue: the queue ``on_rejected="poison"`` pushes to.
    :param message_retry_delay: the delay of ``on_rejected="retry"``.
    """

    conn_id: str
    account_id: str | None
    queue: str | None
    batch_size: int
    max_messages_per_event: int
    visibility_timeout: float
    schedule: PollSchedule
    on_rejected: str
    poison_queue: str | None
    message_retry_delay: MessageRetryDelay


class MessageStreamProducer(shared_stream_producer_base() or object):  # type: ignore[misc]
    """
    The broker side of the message trigger's shared stream: pulls, and settles what Airflow resolved.

    It keeps at most ``max_in_flight`` messages (and fewer batches than a watcher's queue holds)
    leased and unsettled, pulling no more until some are settled, so that a watcher's queue cannot
    overflow and a metadata database that stores nothing cannot make it lease the whole queue; after
    messages failed in Airflow it waits before pulling again, longer each time, so that an outage
    does not spend their delivery attempts one after another.

    :param settings: the queue and how to pull and settle.
    :param ack_timeout: Airflow's ``[triggerer] shared_stream_ack_timeout``; the lease must outlast it.
    :param max_in_flight: messages leased and not yet settled, at most (at least one event's worth).
    :param max_batches_in_flight: batches broadcast and not yet settled, at most (Airflow's
        ``shared_stream_subscriber_queue_size``).
    """

    def __init__(
        self, settings: StreamSettings, *, ack_timeout: float, max_in_flight: int, max_batches_in_flight: int
    ) -> None:
        self.settings = settings
        self.ack_timeout = ack_timeout
        self.max_in_flight = max(settings.max_messages_per_event, max_in_flight)
        self.max_batches_in_flight = max(1, max_batches_in_flight)
        self.hook = CloudflareQueuesHook(settings.conn_id, queue=settings.queue, account_id=settings.account_id)
        self.log = logging.getLogger(__name__)
        #: messages pulled and not yet settled
        self.in_flight = 0
        #: batches pulled and not yet settled
        self.batches_in_flight = 0
        self._settled: asyncio.Event | None = None
        self._poison_queue_id: str | None = None
        self._hold = 0.0  # seconds to wait before the next pull, after failures in Airflow
        self._hold_until = 0.0

    async def start(self) -> None:
        """What must hold before the first pull: a long enough lease, and somewhere for rejected messages."""
        check_lease_outlasts_ack_window(self.settings.visibility_timeout, self.ack_timeout)
        queue = self.settings.queue
        if self.settings.on_rejected == "dead_letter":
            budget = AttemptBudget.of(await self.hook.aget_queue())
            if not budget.dead_letter_queue:
                raise CloudflareQueuesValidationError(
                    f"on_rejected='dead_letter', but the consumer of queue {queue!r} has no dead-letter queue: "
                    "rejected messages would be deleted after their last delivery. Configure one "
                    "(CloudflareQueuesUpdateConsumerOperator(dead_letter_queue=...)), or use "
                    "on_rejected='retry' or 'poison'"
                )
        if self.settings.on_rejected == "poison":
            poison = self.settings.poison_queue
            try:
                self._poison_queue_id = (await self.hook.aget_queue(poison)).queue_id
            except CloudflareQueuesNotFoundError:
                raise CloudflareQueuesValidationError(
                    f"poison_queue names queue {poison!r}, which does not exist; nothing was pulled"
                ) from None
            if self._poison_queue_id == (await self.hook.aget_queue()).queue_id:
                raise CloudflareQueuesValidationError(f"poison_queue names {poison!r}, the queue being watched")
        if self.settings.on_rejected != "retry" and not triggerer_cohort_grace_period():
            self.log.warning(
                "Queue %s: on_rejected=%r, and [triggerer] shared_stream_cohort_grace_period is 0: after a triggerer "
                "restart, a message pulled before the watcher that wants it has subscribed again counts as rejected. "
                "Set the grace period (5 s, say) so that every watcher subscribes before the first pull",
                queue,
                self.settings.on_rejected,
            )
        self.log.info(
            "Pulling queue %s for its watchers in this triggerer (one loop: up to %d messages per event, leases of "
            "%g s, at most %d messages unsettled); a message is acked once every watcher resolved its batch",
            queue,
            self.settings.max_messages_per_event,
            self.settings.visibility_timeout,
            self.max_in_flight,
        )

    async def batches(self) -> AsyncIterator[LeasedBatch]:
        """Every batch of leased messages, forever (see :func:`~.polling.poll_messages`)."""
        await self.start()
        async for collected in poll_messages(self._collect, self.settings.schedule, self.settings.queue, self.log):
            self.in_flight += len(collected.messages)
            self.batches_in_flight += 1
            messages = tuple(m.to_xcom(lease=False) for m in collected.messages)
            yield LeasedBatch(StreamedBatch(self.settings.queue, collected.queue_id, messages), collected.messages)

    async def open_stream(self) -> AsyncIterator[tuple[StreamedBatch, LeasedBatch]]:
        """Yield ``(raw event, leased batch)`` for Airflow to broadcast and hand back to :meth:`advance`."""
        async for batch in self.batches():
            yield batch.streamed, batch

    async def advance(self, batch: Sequence[Any]) -> None:
        """Settle Airflow's ``AdvanceItem`` s; never raises (that would end every watcher)."""
        await self.settle(
            (item.broker_payload, Resolution(item.outcome.acked, item.outcome.failed, item.outcome.rejected))
            for item in batch
        )

    async def settle(self, items: Iterable[tuple[LeasedBatch, Resolution]]) -> None:
        """Carry out the actions for resolved batches: route poison, then one ack request."""
        resolved: list[tuple[PulledMessage, Resolution]] = []
        batches = 0
        for batch, outcome in items:
            batches += 1
            ids = [m.id for m in batch.messages]
            per_message = resolve_batch(outcome, ids, batch.streamed.taken)
            if outcome.acked and not outcome.failed and not batch.streamed.taken:
                self.log.error(
                    "Queue %s: watchers stored events of a batch but marked none of its %d message(s) taken: "
                    "nobody can tell which they fired, so all are given back",
                    self.settings.queue,
                    len(ids),
                )
            resolved.extend(zip(batch.messages, per_message, strict=True))
        plan = plan_advance(resolved, self.settings.on_rejected, self.settings.message_retry_delay)
        try:
            await self._route_poison(plan)
            await self._ack(plan)
        finally:
            self.in_flight -= len(resolved)
            self.batches_in_flight -= batches
            self._hold_after(failed=sum(1 for _, r in resolved if r.failed), acked=len(plan.acks))
            if self._settled is not None:
                self._settled.set()

    async def aclose(self) -> None:
        await self.hook.aclose()

    async def _collect(self) -> Collected:
        await self._wait_to_pull()
        return await self.hook.acollect_messages(
            batch_size=self.settings.batch_size,
            max_messages=self.settings.max_messages_per_event,
            visibility_timeout=self.settings.visibility_timeout,
        )

    async def _wait_to_pull(self) -> None:
        hold = self._hold_until - time.monotonic()
        if hold > 0:
            await asyncio.sleep(hold)
        if self._settled is None:
            self._settled = asyncio.Event()
        while (
            self.in_flight + self.settings.max_messages_per_event > self.max_in_flight
            or self.batches_in_flight >= self.max_batches_in_flight
        ):
            self._settled.clear()
            await self._settled.wait()

    def _hold_after(self, *, failed: int, acked: int) -> None:
        """After messages failed in Airflow, wait before pulling more: ``poll_interval``, doubling with each
        further failure, at most the ack timeout; the first settlement without failures ends the wait."""
        if not failed:
            if acked:
                self._hold = 0.0
            return
        schedule = self.settings.schedule
        self._hold = min(max(schedule.poll_interval, self._hold * 2), max(self.ack_timeout, schedule.poll_interval))
        self._hold_until = time.monotonic() + self._hold
        self.log.warning(
            "%d message(s) of queue %s failed in Airflow (their asset events may not have been stored): given "
            "back; pulling again in %g s",
            failed,
            self.settings.queue,
            self._hold,
        )

    async def _route_poison(self, plan: AdvancePlan) -> None:
        if not plan.poison:
            return
        poison = plan.poison
        try:
            await self.hook.apush_messages([m.forwarded() for m in poison], queue=self._poison_queue_id)
        except CloudflareQueuesPushError as err:
            pushed = {poison[i].lease_id for i in err.pushed}
            self.log.warning("Routing poison to %s failed part-way (%s)", self.settings.poison_queue, err)
            plan.acks.extend(m for m in poison if m.lease_id in pushed)
            plan.poison = [m for m in poison if m.lease_id not in pushed]
            plan.poison_not_routed()
            return
        except CloudflareQueuesError as err:
            self.log.warning(
                "Routing %d message(s) to %s failed (%s): given back, to be routed when they come again",
                len(poison),
                self.settings.poison_queue,
                err,
            )
            plan.poison_not_routed()
            return
        plan.poison_routed()

    async def _ack(self, plan: AdvancePlan) -> None:
        queue = self.settings.queue
        try:
            result = await self.hook.aack_messages(acks=plan.acks, retries=plan.retries)
        except CloudflareQueuesAckError as err:
            self.log.warning(
                "Settling messages of queue %s failed part-way (%s): those not confirmed come back when their "
                "lease expires, and may reach the watchers twice",
                queue,
                err,
            )
            return
        except CloudflareQueuesError as err:
            self.log.warning(
                "Settling %d message(s) of queue %s failed (%s): %s; they come back when their lease expires, "
                "and may reach the watchers twice",
                len(plan.acks) + len(plan.retries),
                queue,
                err,
                "the service may have applied it" if err.outcome_unknown else "nothing was applied",
            )
            return
        self.log.info("Settled queue %s: %s", queue, plan.describe())
        if result.not_applied or result.unconfirmed:
            self.log.warning(
                "Queue %s: %d lease(s) not applied (their lease had run out: they come again) and %d unconfirmed",
                queue,
                len(result.not_applied),
                len(result.unconfirmed),
            )
