"""The message trigger: event-driven scheduling (Airflow 3 asset watchers) on a Cloudflare queue."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable
from datetime import timedelta
from typing import Any

from .._compat import (
    AIRFLOW_VERSION,
    AirflowProviderDeprecationWarning,
    EventTriggerBase,
    TriggerEvent,
    reject_shared_stream_event,
)
from ..api import units
from ..api.errors import CloudflareQueuesAckError, CloudflareQueuesError, CloudflareQueuesValidationError
from ..api.limits import MAX_PULL_BATCH_SIZE
from ..api.loop_rules import PullWishes, SettleRule, WatcherSpec
from ..api.message_filter import parse_message_filter
from ..api.models import PulledMessage
from ..consume.attempts import CONSUMER_RETRY_DELAY
from ..consume.fate import ACK_MODES, ON_REJECTED, check_lease_outlasts_ack_window
from ..hooks.queues import CloudflareQueuesHook
from ._arguments import QueueTriggerArguments
from .message_stream import (
    MessageStreamProducer,
    shared_streams_available,
    triggerer_ack_timeout,
    triggerer_directory,
)
from .polling import PollSchedule, poll_messages
from .queue_loop import QueueLoop, Route, StreamedBatch, current_directory

#: the ``scheme`` of common-messaging's ``MessageQueueTrigger``, and the first part of the shared stream key
SCHEME = "cloudflare+queues"
#: messages per event with ``ack="dag"`` or ``"emitted"`` unless ``max_messages_per_event`` says otherwise
DEFAULT_MESSAGES_PER_EVENT = 100


def _ack_mode(ack: str | None, ack_on_emit: bool | None) -> str:
    """The ``ack`` setting, from ``ack`` or the deprecated ``ack_on_emit``; the default depends on Airflow."""
    if ack_on_emit is not None:
        meant = "emitted" if ack_on_emit else "dag"
        warnings.warn(
            f"CloudflareQueuesMessageTrigger(ack_on_emit={ack_on_emit!r}) is deprecated and goes in the next "
            f"release: write ack={meant!r}",
            AirflowProviderDeprecationWarning,
            stacklevel=3,
        )
        if ack is not None and ack != meant:
            raise CloudflareQueuesValidationError(
                f"ack={ack!r} and ack_on_emit={ack_on_emit!r} disagree: give ack only"
            )
        return meant
    if ack is None:
        return "persisted" if shared_streams_available() else "dag"
    if ack not in ACK_MODES:
        raise CloudflareQueuesValidationError(f"ack must be one of {', '.join(map(repr, ACK_MODES))}, got {ack!r}")
    if ack == "persisted" and not shared_streams_available():
        raise CloudflareQueuesValidationError(
            f"ack='persisted' acks a message once Airflow has stored its asset event, through the shared streams "
            f"of Airflow 3.3 (airflow.triggers.shared_stream); this is Airflow {AIRFLOW_VERSION}. Upgrade, or use "
            "ack='dag' (the DAG acks the lease ids: at-least-once) or ack='emitted' (at-most-once)"
        )
    return ack


def _message_retry_delay_form(value: object) -> int | str | None:
    """``message_retry_delay`` as it travels to the triggerer: ``None``, ``"consumer"`` or whole seconds."""
    if value is None or value == CONSUMER_RETRY_DELAY:
        return value
    if callable(value):
        raise CloudflareQueuesValidationError(
            "the message trigger's message_retry_delay cannot be a function (it travels to the triggerer): give "
            "seconds, a timedelta, 'consumer' or None (the provider's backoff)"
        )
    return units.delay_seconds(value, "message_retry_delay")


class CloudflareQueuesMessageTrigger(QueueTriggerArguments, EventTriggerBase):  # type: ignore[misc]
    """
    Pull messages and fire them as events, for event-driven scheduling (Airflow 3 asset watchers)::

        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
        from airflow.sdk import Asset, AssetWatcher

        trigger = MessageQueueTrigger(scheme="cloudflare+queues", cloudflare_queue="inbox")
        inbox = Asset("cloudflare-queues://inbox", watchers=[AssetWatcher(name="inbox", trigger=trigger)])

    An event becomes the triggering asset event's ``extra["payload"]``:
    ``{"queue", "queue_id", "messages", "acked", "ack", "leased_for_seconds"}``. When the ack happens
    is the ``ack`` setting:

    * ``"persisted"`` (the default on Airflow 3.3+): every watcher of the queue in a triggerer shares
      one pull loop (:mod:`~airflow_provider_cfqueues.triggers.queue_loop`), however it spells the
      queue and whatever its pull settings. Each batch is shown to every watcher, which fires an
      event with the messages its ``message_filter`` wants; a message is acked once the events that
      carry it were stored (given back when one was not; handled as ``on_rejected`` says when every
      watcher saw it and none wanted it). The loop pulls only while it holds every watcher of the
      queue in the deployment (docs/airflow.md, "One queue, many DAGs"). At-least-once into Airflow:
      a triggerer that dies between storing and acking makes a duplicate. The DAG acks nothing.
    * ``"dag"`` (the default before 3.3): each event carries its messages with their ``lease_id``;
      the DAG acks them after processing
      (``CloudflareQueuesAckOperator``). At-least-once end to end, if the leases outlast the time to
      the ack.
    * ``"emitted"``: acks before the event is fired. At-most-once: a triggerer crash between the ack
      and the stored event, or a failed run, loses the messages. A message is marked ``acked`` only
      when the service confirmed its ack; the others keep their ``lease_id`` for the DAG to ack.

    Transient errors never end the trigger (it pulls again after ``poll_interval``); a wrong token or
    queue ends it, after firing what it had already pulled. While the queue's delivery is paused
    (pulls get HTTP 409), it keeps polling every ``paused_poll_interval`` seconds.

    :param cloudflare_queue: queue id or name; through ``MessageQueueTrigger`` (which keeps ``queue=``
        for a queue URI) pass ``cloudflare_queue=`` too, or ``queue="cloudflare+queues://<queue>"``.
    :param ack: ``"persisted"``, ``"dag"`` or ``"emitted"`` (see above); ``None`` picks the default.
    :param message_filter: (``ack="persisted"``) the messages this watcher wants:
        ``{"field": "kind", "equals": "refund"}`` (also ``"in": [...]`` or ``"exists": True``; ``field``
        is a dotted path into the JSON body); for events Cloudflare writes,
        ``{"r2": {"bucket", "prefix", "suffix", "actions"}}`` or ``{"event_type": "cf.kv.*"}``; the
        dotted import path of a function of the message (the payload's message dict) returning ``True``
        or ``False`` (anything else takes nothing, logged once); or a list of these, all of which must
        hold. What it does not want it rejects.
    :param on_rejected: (``ack="persisted"``) a message every watcher rejected: ``"retry"`` gives it
        back after ``message_retry_delay``, ``"dead_letter"`` gives it back at once until the
        consumer's dead-letter queue takes it (the consumer must have one), ``"poison"`` pushes it to
        ``poison_queue`` and acks it.
        Like ``poison_queue`` and ``message_retry_delay``, it must be the same on every watcher of the
        queue: the loop pulls nothing while they disagree.
    :param poison_queue: the queue for ``on_rejected="poison"``.
    :param message_retry_delay: the delay of ``on_rejected="retry"``: seconds or a ``timedelta``,
        ``"consumer"`` (the consumer's ``retry_delay``), or ``None`` (the provider's backoff: 30 s,
        doubling per attempt, at most an hour).
    :param batch_size: messages per pull (1 to 100); the queue's loop pulls with the largest its
        watchers ask for, and with the smallest of their poll intervals.
    :param max_messages_per_event: gather up to this many messages (several pulls) into one event, so
        that a burst makes one DAG run instead of many (default 100). On Airflow 3.3, size it to your
        bursts: events stored in quick succession start a run for the first only, and the others wait
        for the next event (apache/airflow#56050).
    :param visibility_timeout: seconds (or a ``timedelta``) the messages stay leased. With
        ``ack="dag"`` it must cover the time until the DAG run acks them; with ``"persisted"`` it must
        outlast ``[triggerer] shared_stream_ack_timeout`` (300 s) by a margin, which is checked.
    :param poll_interval: seconds (or a ``timedelta``) before pulling again after an empty pull; it
        doubles with each further empty pull, up to ``max_poll_interval``, and starts over when
        messages arrive. Every pull is a billable operation, empty or not.
    :param max_poll_interval: the longest wait between pulls of an idle queue (seconds).
    :param paused_poll_interval: seconds between pulls while the queue's delivery is paused.
    :param ack_on_emit: deprecated: ``True`` is ``ack="emitted"``, ``False`` is ``ack="dag"``.
    :param account_id: account id (default: the connection's).
    :param cloudflare_queues_conn_id: the Airflow connection.
    """

    _fields = (
        "ack",
        "message_filter",
        "on_rejected",
        "poison_queue",
        "message_retry_delay",
        "batch_size",
        "max_messages_per_event",
        "visibility_timeout",
        "poll_interval",
        "max_poll_interval",
        "paused_poll_interval",
    )

    def __init__(
        self,
        *,
        cloudflare_queue: str | None = None,
        ack: str | None = None,
        message_filter: dict[str, Any] | str | list[Any] | None = None,
        on_rejected: str = "retry",
        poison_queue: str | None = None,
        message_retry_delay: float | timedelta | str | None = None,
        batch_size: int = 100,
        max_messages_per_event: int = DEFAULT_MESSAGES_PER_EVENT,
        visibility_timeout: float | timedelta = 600.0,
        poll_interval: float | timedelta = 5.0,
        max_poll_interval: float | timedelta = 60.0,
        paused_poll_interval: float | timedelta = 60.0,
        ack_on_emit: bool | None = None,
        account_id: str | None = None,
        cloudflare_queues_conn_id: str = CloudflareQueuesHook.default_conn_name,
        **unknown: Any,
    ) -> None:
        super().__init__()
        self._take_queue_arguments(cloudflare_queue, account_id, cloudflare_queues_conn_id, unknown)
        self.ack = _ack_mode(ack, ack_on_emit)
        self.batch_size = units.batch_size(batch_size) or MAX_PULL_BATCH_SIZE
        self.visibility_timeout = units.known_lease_seconds(visibility_timeout)
        self.poll_interval = units.interval(poll_interval, "poll_interval")
        self.max_poll_interval = max(units.interval(max_poll_interval, "max_poll_interval"), self.poll_interval)
        self.paused_poll_interval = units.interval(paused_poll_interval, "paused_poll_interval")
        self.message_retry_delay = _message_retry_delay_form(message_retry_delay)
        self.on_rejected = on_rejected
        self.poison_queue = poison_queue or None
        self.message_filter = message_filter
        self.max_messages_per_event = (
            units.count(max_messages_per_event, "max_messages_per_event", low=1) or DEFAULT_MESSAGES_PER_EVENT
        )
        if self.ack == "persisted":
            self._check_persisted_arguments()
            check_lease_outlasts_ack_window(self.visibility_timeout, triggerer_ack_timeout())
        else:
            self._check_batch_arguments()
        self._wants = self._message_filter()
        self._told_not_bool = False

    def _check_persisted_arguments(self) -> None:
        if self.on_rejected not in ON_REJECTED:
            raise CloudflareQueuesValidationError(
                f"on_rejected must be one of {', '.join(map(repr, ON_REJECTED))}, got {self.on_rejected!r}"
            )
        if (self.on_rejected == "poison") != (self.poison_queue is not None):
            raise CloudflareQueuesValidationError(
                "on_rejected='poison' needs poison_queue=<queue name or id>, and poison_queue is only used with it"
            )

    def _check_batch_arguments(self) -> None:
        given = [
            name
            for name, value, default in (
                ("message_filter", self.message_filter, None),
                ("on_rejected", self.on_rejected, "retry"),
                ("poison_queue", self.poison_queue, None),
                ("message_retry_delay", self.message_retry_delay, None),
            )
            if value != default
        ]
        if given:
            raise CloudflareQueuesValidationError(
                f"{', '.join(given)} settle messages on a shared stream, which needs ack='persisted'; with "
                f"ack={self.ack!r} the trigger fires every message it pulls"
            )

    def _message_filter(self) -> Callable[[dict[str, Any]], bool] | None:
        return None if self.message_filter is None else parse_message_filter(self.message_filter)

    # -- ack="persisted": the shared stream -------------------------------------------------------

    def shared_stream_key(self) -> Hashable | None:
        """
        The group of this watcher: the queue as spelled, with the connection and account (no I/O, never
        raises). Groups that turn out to reach one queue share its one loop all the same
        (:mod:`.queue_loop`); how the queue is pulled is not part of the key, so watchers that ask
        for different settings never make a second loop.
        """
        if self.ack != "persisted":
            return None
        return (
            SCHEME,
            str(self.cloudflare_queues_conn_id),
            str(self.account_id or ""),
            str(self.cloudflare_queue or ""),
        )

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> MessageStreamProducer:
        """The producer of one group (called once per group, in the triggerer): a tap on the queue's loop."""
        return MessageStreamProducer(
            kwargs.get("cloudflare_queues_conn_id") or CloudflareQueuesHook.default_conn_name,
            kwargs.get("account_id"),
            kwargs.get("cloudflare_queue"),
        )

    def _route(self) -> Route:
        return (self.cloudflare_queues_conn_id, self.account_id, self.cloudflare_queue)

    def watcher_spec(self) -> WatcherSpec:
        """This watcher as its queue's loop sees it: its trigger id, assets, mode and settings."""
        trigger_id = getattr(self, "trigger_id", None)
        store = getattr(self, "asset_state_store", None)
        assets = tuple(sorted({*getattr(store, "_by_name", {}), *getattr(store, "_by_uri", {})}))
        return WatcherSpec(
            key=str(trigger_id) if trigger_id is not None else f"local-{id(self):x}",
            trigger_id=trigger_id,
            assets=assets,
            ack=self.ack,
            conn_id=self.cloudflare_queues_conn_id,
            queue=str(self.cloudflare_queue or ""),
            pull=PullWishes(
                batch_size=self.batch_size,
                max_messages_per_event=self.max_messages_per_event,
                visibility_timeout=self.visibility_timeout,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
                paused_poll_interval=self.paused_poll_interval,
            ),
            settle=SettleRule(self.on_rejected, self.poison_queue, self.message_retry_delay),
        )

    async def _loop(self) -> QueueLoop:
        """This process's loop of the queue (the lease checked first against this process's ack timeout)."""
        directory = current_directory(triggerer_directory)
        directory.name_triggerer(getattr(self, "triggerer_job_id", None))
        if self.ack == "persisted":
            check_lease_outlasts_ack_window(self.visibility_timeout, directory.ack_timeout)
        return await directory.loop_for(*self._route())

    async def _join(self) -> tuple[QueueLoop, WatcherSpec]:
        loop = await self._loop()
        spec = self.watcher_spec()
        loop.join(spec, self._route())
        return loop, spec

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Fire the messages of each batch this watcher wants; reject a batch it wants none of."""
        loop, spec = await self._join()
        try:
            async for batch in shared_stream:
                events = self._events(loop, spec, batch)
                if not events:
                    reject_shared_stream_event()
                for event in events:
                    yield TriggerEvent(event)  # type: ignore[no-untyped-call]
        finally:
            loop.leave(spec.key)

    def _events(self, loop: QueueLoop, spec: WatcherSpec, batch: StreamedBatch) -> list[dict[str, Any]]:
        """The events of the messages of ``batch`` this watcher wants (up to ``max_messages_per_event`` each)."""
        wanted = [message for message in batch.messages if self.wants(message)]
        loop.saw(batch.batch_id, spec.key, (message["id"] for message in wanted))
        size = self.max_messages_per_event
        return [
            {
                "queue": batch.queue,
                "queue_id": batch.queue_id,
                "messages": [{**message, "acked": False} for message in wanted[start : start + size]],
                "acked": False,
                "ack": "persisted",
                "leased_for_seconds": None,
            }
            for start in range(0, len(wanted), size)
        ]

    def wants(self, message: dict[str, Any]) -> bool:
        """
        Whether this watcher's filter takes the message. A filter must return a bool: anything else
        (``"false"``, ``None``, a number), or an exception, takes nothing and is logged once per watcher.
        """
        if self._wants is None:
            return True
        try:
            answer = self._wants(message)
        except Exception:
            self.log.exception("message_filter %r failed on message %s: not taken", self.message_filter, message["id"])
            return False
        if isinstance(answer, bool):
            return answer
        if not self._told_not_bool:
            self._told_not_bool = True
            logging.getLogger(__name__).error(
                "message_filter %r of %s returned %r (a %s), not True or False, for message %s: not taken (this "
                "is logged once per watcher; return a bool)",
                self.message_filter,
                self.watcher_spec().describe(),
                answer,
                type(answer).__name__,
                message["id"],
            )
        return False

    def _schedule(self) -> PollSchedule:
        return PollSchedule(self.poll_interval, self.max_poll_interval, self.paused_poll_interval)

    # -- run(): ack="dag" and "emitted"; "persisted" outside a triggerer's shared streams --------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        events = self._run_persisted() if self.ack == "persisted" else self._run_batches()
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()  # closing run() settles (or gives back) what it holds, at once

    async def _run_persisted(self) -> AsyncGenerator[TriggerEvent, None]:
        """
        One watcher on its own (a test calling ``run()``; the triggerer uses the shared stream): it
        joins the queue's loop of this process, as a group of one. The messages of each batch the
        filter wants are fired, and acked when the consumer of the events asks for the next one; a
        batch whose events were taken but not followed by that request is given back.
        """
        loop = await self._loop()
        tap = loop.attach(self._route())
        spec = self.watcher_spec()
        loop.join(spec, self._route())
        try:
            async for batch in tap.stream():
                failed = True
                try:
                    for event in self._events(loop, spec, batch.streamed):
                        yield TriggerEvent(event)  # type: ignore[no-untyped-call]
                    failed = False
                finally:
                    await tap.resolve([(batch, failed)])
        finally:
            loop.leave(spec.key)
            tap.close()
            await loop.wait_closed()  # a test's run() leaves nothing running behind it

    async def _run_batches(self) -> AsyncGenerator[TriggerEvent, None]:
        hook = CloudflareQueuesHook(
            self.cloudflare_queues_conn_id, queue=self.cloudflare_queue, account_id=self.account_id
        )

        loop, spec = await self._join()

        async def collect() -> Any:
            refused = await loop.batch_watcher_refused()
            if refused:
                raise CloudflareQueuesValidationError(
                    f"{spec.describe()} (ack={self.ack!r}) is refused on queue {loop.name!r}: {refused}"
                )
            return await hook.acollect_messages(
                batch_size=self.batch_size,
                max_messages=self.max_messages_per_event,
                visibility_timeout=self.visibility_timeout,
            )

        try:
            async for collected in poll_messages(collect, self._schedule(), self.cloudflare_queue, self.log):
                messages = collected.messages
                acked = await self._ack(hook, messages) if self.ack == "emitted" else set()
                self.log.info(
                    "Firing an event with %d message(s) from queue %s (%d acked)",
                    len(messages),
                    self.cloudflare_queue,
                    len(acked),
                )
                yield TriggerEvent(self._event(messages, collected.queue_id, acked))  # type: ignore[no-untyped-call]
        finally:
            loop.leave(spec.key)
            await hook.aclose()

    async def _ack(self, hook: CloudflareQueuesHook, messages: list[PulledMessage]) -> set[str]:
        """Ack before emitting; return the lease ids the service confirmed (never guessed)."""
        try:
            result = await hook.aack_messages(acks=messages)
        except CloudflareQueuesAckError as err:
            self.log.warning("Acking failed part-way (%s); the rest are emitted unacked, with their leases", err)
            return set(err.acked)
        except CloudflareQueuesError as err:
            self.log.warning(
                "Acking %d message(s) failed (%s); they are emitted unacked (acked: false), with their lease ids "
                "for the DAG to ack",
                len(messages),
                err,
            )
            return set()
        return {m.lease_id for m in messages} - set(result.not_applied) - set(result.unconfirmed)

    def _event(self, messages: list[PulledMessage], queue_id: str | None, acked: set[str]) -> dict[str, Any]:
        payload = []
        for message in messages:
            done = message.lease_id in acked
            payload.append({**message.to_xcom(lease=not done), **message.event_fields(), "acked": done})
        every = len(acked) == len(messages)
        return {
            "queue": self.cloudflare_queue,
            "queue_id": queue_id,
            "messages": payload,
            "acked": every,
            "ack": self.ack,
            "leased_for_seconds": None if every else self.visibility_timeout,
        }
