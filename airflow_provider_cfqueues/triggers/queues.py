"""Triggers that run on the triggerer: they poll Cloudflare Queues with the hook's async methods."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from .._compat import BaseTrigger, TriggerEvent
from ..api import units
from ..api.backlog import BacklogCriteria, evaluate
from ..api.errors import (
    CloudflareQueuesAckError,
    CloudflareQueuesDeliveryPausedError,
    CloudflareQueuesError,
)
from ..api.limits import MAX_PULL_BATCH_SIZE
from ..api.models import PulledMessage
from ..hooks.queues import CloudflareQueuesHook
from ._arguments import QueueTriggerArguments
from .shared_metrics import SharedMetrics


class CloudflareQueuesBacklogTrigger(QueueTriggerArguments, BaseTrigger):
    """
    Poll a queue's metrics (which leases nothing) until the backlog criteria hold, then fire one event
    ``{"status": "success", "metrics": {...}, "message": ...}``. Transient API errors are logged and
    polled again; authentication, not-found and validation errors fire ``{"status": "error", ...}``;
    past ``timeout_at`` it fires ``{"status": "timeout", ...}``.
    The criteria are evaluated by the same function as the sensor's ``poke``. The backlog triggers of
    one triggerer that watch the same queue through the same connection share one metrics poll per
    interval (:class:`~airflow_provider_cfqueues.triggers.shared_metrics.SharedMetrics`).

    :param cloudflare_queue: queue id or name.
    :param criteria: the thresholds, as :meth:`BacklogCriteria.to_dict` gives them.
    :param poll_interval: seconds (or a ``timedelta``) between polls.
    :param timeout_at: give up at this time (seconds since the epoch) with a ``{"status": "timeout"}``
        event; the triggerer enforces the deferral timeout too, but ``dag.test()`` does not.
    :param account_id: account id (default: the connection's).
    :param cloudflare_queues_conn_id: the Airflow connection.
    """

    _fields = ("criteria", "poll_interval", "timeout_at")

    def __init__(
        self,
        *,
        cloudflare_queue: str | None = None,
        criteria: dict[str, Any],
        poll_interval: float | timedelta = 30.0,
        timeout_at: float | None = None,
        account_id: str | None = None,
        cloudflare_queues_conn_id: str = CloudflareQueuesHook.default_conn_name,
        **unknown: Any,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._take_queue_arguments(cloudflare_queue, account_id, cloudflare_queues_conn_id, unknown)
        self.criteria = BacklogCriteria(**criteria).to_dict()
        self.poll_interval = units.interval(poll_interval, "poll_interval")
        self.timeout_at = timeout_at

    async def run(self) -> AsyncIterator[TriggerEvent]:
        criteria = BacklogCriteria(**self.criteria)
        shared = SharedMetrics.acquire(self.cloudflare_queues_conn_id, self.account_id, self.cloudflare_queue)
        last = "no poll has answered yet"
        try:
            while True:
                try:
                    metrics = await shared.get(self.poll_interval)
                except CloudflareQueuesError as err:
                    if not err.retryable:
                        yield TriggerEvent(  # type: ignore[no-untyped-call]
                            {"status": "error", "message": str(err), "error_type": type(err).__name__}
                        )
                        return
                    last = f"the last poll failed: {err}"
                    self.log.warning(
                        "Polling the backlog failed (%s); polling again in %.0f s", err, self.poll_interval
                    )
                else:
                    met, explanation = evaluate(criteria, metrics, int(time.time() * 1000))
                    if met:
                        yield TriggerEvent(  # type: ignore[no-untyped-call]
                            {"status": "success", "metrics": metrics.model_dump(), "message": explanation}
                        )
                        return
                    last = explanation
                    self.log.info("Queue %s: %s", self.cloudflare_queue, explanation)
                if self.timeout_at is not None and time.time() + self.poll_interval > self.timeout_at:
                    yield TriggerEvent(  # type: ignore[no-untyped-call]
                        {"status": "timeout", "message": f"the backlog criteria were not met in time ({last})"}
                    )
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await shared.release()


class CloudflareQueuesPurgeTrigger(QueueTriggerArguments, BaseTrigger):
    """
    Wait on the triggerer for a purge the task started to complete: poll the purge status, then fire
    ``{"status": "success", "backlog_before", "message"}``; ``{"status": "timeout", ...}`` past
    ``timeout_at``; ``{"status": "error", ...}`` on a wrong token or queue. Transient errors are
    polled again.

    :param cloudflare_queue: queue id or name.
    :param poll_interval: seconds (or a ``timedelta``) between status polls.
    :param timeout_at: give up at this time (seconds since the epoch).
    :param backlog_before: the backlog the task read before starting the purge (handed back in the event).
    :param account_id: account id (default: the connection's).
    :param cloudflare_queues_conn_id: the Airflow connection.
    """

    _fields = ("poll_interval", "timeout_at", "backlog_before")

    def __init__(
        self,
        *,
        cloudflare_queue: str | None = None,
        poll_interval: float | timedelta = 5.0,
        timeout_at: float | None = None,
        backlog_before: int | None = None,
        account_id: str | None = None,
        cloudflare_queues_conn_id: str = CloudflareQueuesHook.default_conn_name,
        **unknown: Any,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._take_queue_arguments(cloudflare_queue, account_id, cloudflare_queues_conn_id, unknown)
        self.poll_interval = units.interval(poll_interval, "poll_interval")
        self.timeout_at = timeout_at
        self.backlog_before = backlog_before

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CloudflareQueuesHook(
            self.cloudflare_queues_conn_id, queue=self.cloudflare_queue, account_id=self.account_id
        )
        last = "no status yet"
        try:
            while True:
                try:
                    status = await hook.apurge_status()
                    done = status.done  # an answer it cannot read is an error, not a poll until the timeout
                except CloudflareQueuesError as err:
                    if not err.retryable:
                        yield TriggerEvent({"status": "error", "message": str(err)})  # type: ignore[no-untyped-call]
                        return
                    last = f"the last poll failed: {err}"
                else:
                    if done:
                        yield TriggerEvent(  # type: ignore[no-untyped-call]
                            {
                                "status": "success",
                                "backlog_before": self.backlog_before,
                                "message": f"the purge started at {status.started_at} completed",
                            }
                        )
                        return
                    last = f"the purge started at {status.started_at} is still running"
                if self.timeout_at is not None and time.time() + self.poll_interval > self.timeout_at:
                    yield TriggerEvent(  # type: ignore[no-untyped-call]
                        {"status": "timeout", "message": f"waited long enough ({last}); it goes on in the service"}
                    )
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await hook.aclose()


def _event_trigger_base() -> type[Any]:
    try:
        from airflow.triggers.base import BaseEventTrigger  # Airflow 3
    except ImportError:  # Airflow 2.11: no event-driven scheduling

        class Airflow3Only(BaseTrigger):
            def __init__(self, **kwargs: Any) -> None:
                raise RuntimeError(
                    "CloudflareQueuesMessageTrigger drives event-driven scheduling (asset watchers), which "
                    "needs Airflow 3. On Airflow 2, poll with CloudflareQueuesBacklogSensor instead."
                )

        return Airflow3Only
    return BaseEventTrigger


class CloudflareQueuesMessageTrigger(QueueTriggerArguments, _event_trigger_base()):  # type: ignore[misc]
    """
    Pull messages and fire them as events, for event-driven scheduling (Airflow 3 asset watchers)::

        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
        from airflow.sdk import Asset, AssetWatcher

        trigger = MessageQueueTrigger(scheme="cloudflare+queues", cloudflare_queue="inbox")
        inbox = Asset("cloudflare-queues://inbox", watchers=[AssetWatcher(name="inbox", trigger=trigger)])

    Each event carries one batch: ``{"queue", "queue_id", "messages", "acked", "leased_for_seconds"}``;
    it becomes the triggering asset event's ``extra["payload"]``. Every message says whether it was
    ``acked`` and, when not, carries its ``lease_id``. By default nothing is acked here: the DAG acks
    the lease ids after processing (``CloudflareQueuesAckOperator``), so a DAG run that fails or never
    starts lets the leases expire and the messages come back (at-least-once). ``ack_on_emit=True``
    acks before the event is fired instead (at-most-once: a lost event or failed run loses the
    messages); a message is marked ``acked`` only when the service confirmed its ack, so when the ack
    fails, or its answer is lost, the messages are still fired, unacked and with their lease ids, and
    the event's ``acked`` is false. Transient errors never end the trigger (it pulls again after
    ``poll_interval``); a wrong token or queue ends it, after firing what it had already pulled.
    While the queue's delivery is paused (pulls get HTTP 409), it keeps polling, every
    ``paused_poll_interval`` seconds, and logs one warning per pause.

    :param cloudflare_queue: queue id or name; through ``MessageQueueTrigger`` (which keeps ``queue=``
        for a queue URI) pass ``cloudflare_queue=`` too, or ``queue="cloudflare+queues://<queue>"``.
    :param batch_size: messages per pull (1 to 100).
    :param max_messages_per_event: gather up to this many messages (several pulls) into one event, so
        that a burst makes one DAG run instead of many.
    :param visibility_timeout: seconds (or a ``timedelta``) the messages stay leased: it must cover the
        time until the DAG run acks them (scheduling delay + processing).
    :param poll_interval: seconds (or a ``timedelta``) before pulling again after an empty pull; it doubles with each
        further empty pull, up to ``max_poll_interval``, and starts over when messages arrive. Every
        pull is a billable operation, empty or not: an idle queue costs 86,400 / ``max_poll_interval``
        pulls a day (1,440 with the default 60 s; 17,280 if it polled every 5 s).
    :param max_poll_interval: the longest wait between pulls of an idle queue (seconds).
    :param ack_on_emit: ack the messages when the event is fired (at-most-once).
    :param paused_poll_interval: seconds between pulls while the queue's delivery is paused.
    :param account_id: account id (default: the connection's).
    :param cloudflare_queues_conn_id: the Airflow connection.
    """

    _fields = (
        "batch_size",
        "max_messages_per_event",
        "visibility_timeout",
        "poll_interval",
        "max_poll_interval",
        "ack_on_emit",
        "paused_poll_interval",
    )

    def __init__(
        self,
        *,
        cloudflare_queue: str | None = None,
        batch_size: int = 100,
        max_messages_per_event: int = 100,
        visibility_timeout: float | timedelta = 600.0,
        poll_interval: float | timedelta = 5.0,
        max_poll_interval: float | timedelta = 60.0,
        ack_on_emit: bool = False,
        paused_poll_interval: float | timedelta = 60.0,
        account_id: str | None = None,
        cloudflare_queues_conn_id: str = CloudflareQueuesHook.default_conn_name,
        **unknown: Any,
    ) -> None:
        super().__init__()
        self._take_queue_arguments(cloudflare_queue, account_id, cloudflare_queues_conn_id, unknown)
        self.batch_size = units.batch_size(batch_size) or MAX_PULL_BATCH_SIZE
        self.max_messages_per_event = units.count(max_messages_per_event, "max_messages_per_event", low=1) or 1
        self.visibility_timeout = units.known_lease_seconds(visibility_timeout)
        self.poll_interval = units.interval(poll_interval, "poll_interval")
        self.max_poll_interval = max(units.interval(max_poll_interval, "max_poll_interval"), self.poll_interval)
        self.ack_on_emit = bool(ack_on_emit)
        self.paused_poll_interval = units.interval(paused_poll_interval, "paused_poll_interval")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CloudflareQueuesHook(
            self.cloudflare_queues_conn_id, queue=self.cloudflare_queue, account_id=self.account_id
        )
        paused = False
        idle_wait = self.poll_interval  # grows while the queue stays empty
        try:
            while True:
                collected = await hook.acollect_messages(
                    batch_size=self.batch_size,
                    max_messages=self.max_messages_per_event,
                    visibility_timeout=self.visibility_timeout,
                )
                messages, queue_id, error = collected.messages, collected.queue_id, collected.error
                if isinstance(error, CloudflareQueuesDeliveryPausedError):
                    if not paused:
                        self.log.warning(
                            "Delivery of queue %s is paused: pulling again every %g s until it is resumed",
                            self.cloudflare_queue,
                            self.paused_poll_interval,
                        )
                    paused = True
                elif paused and error is None:
                    self.log.info("Delivery of queue %s was resumed", self.cloudflare_queue)
                    paused = False
                if messages:
                    acked = await self._ack(hook, messages) if self.ack_on_emit else set()
                    self.log.info(
                        "Firing an event with %d message(s) from queue %s (%d acked)",
                        len(messages),
                        self.cloudflare_queue,
                        len(acked),
                    )
                    yield TriggerEvent(self._event(messages, queue_id, acked))  # type: ignore[no-untyped-call]
                if paused:
                    await asyncio.sleep(self.paused_poll_interval)
                    continue
                if error is not None:
                    if not error.retryable:
                        raise error  # a wrong token or queue: the triggerer shows the failure
                    self.log.warning("Pulling failed (%s); trying again in %.0f s", error, self.poll_interval)
                    await asyncio.sleep(self.poll_interval)
                    continue
                if messages:
                    idle_wait = self.poll_interval
                    continue  # there may be more right away
                await asyncio.sleep(idle_wait)
                idle_wait = min(self.max_poll_interval, idle_wait * 2)
        finally:
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
            payload.append({**message.to_xcom(lease=not done), "acked": done})
        every = len(acked) == len(messages)
        return {
            "queue": self.cloudflare_queue,
            "queue_id": queue_id,
            "messages": payload,
            "acked": every,
            "leased_for_seconds": None if every else self.visibility_timeout,
        }
