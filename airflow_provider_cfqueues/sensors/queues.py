"""A sensor on a Cloudflare queue's backlog."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._compat import AirflowException, AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue, conf
from ..api.backlog import BacklogCriteria, evaluate
from ..api.errors import CloudflareQueuesError
from ..operators.base import QUEUE_TEMPLATE_FIELDS, CloudflareQueuesBaseOperator, closes_hook
from ..triggers.backlog import CloudflareQueuesBacklogTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class CloudflareQueuesBacklogSensor(CloudflareQueuesBaseOperator, BaseSensorOperator):
    """
    Wait until a queue's backlog crosses a threshold: at least ``min_backlog`` messages (work has
    piled up) and/or at most ``max_backlog`` (the queue is drained), optionally also on bytes and on
    the age of the oldest message; every threshold set must hold, or any one with ``match="any"``
    ("500 messages or the oldest older than 10 minutes", in one sensor). It reads the metrics
    endpoint, which leases nothing, so it never takes messages away from consumers.

    Works in ``poke`` and ``reschedule`` modes, and deferred (``deferrable=True``; default from
    ``[operators] default_deferrable``) with :class:`CloudflareQueuesBacklogTrigger` on the triggerer;
    both decide with the same function. Returns (to XCom) the metrics it saw:
    ``{"backlog_count", "backlog_bytes", "oldest_message_timestamp_ms"}``. Transient API errors are
    logged and polled again; authentication and not-found errors fail at once (deferred mode checks
    once before deferring, so a wrong token or queue fails there; once deferred, Airflow's
    ``soft_fail`` turns any failure into a skip). ``timeout``, ``soft_fail``, ``poke_interval`` and
    ``exponential_backoff`` work as in any sensor.

    :param cloudflare_queue: queue id or name (templated); default: the connection's ``queue`` extra.
    :param min_backlog: wait for at least this many messages (templated).
    :param max_backlog: wait for at most this many messages, e.g. 0 for a drained queue (templated).
    :param min_backlog_bytes: wait for at least this many bytes (templated).
    :param max_backlog_bytes: wait for at most this many bytes (templated).
    :param min_oldest_age: wait until the oldest message is at least this old (``timedelta`` or seconds).
    :param max_oldest_age: wait until the oldest message is at most this old, or the queue is empty.
    :param match: ``"all"`` (default): every threshold set must hold; ``"any"``: the first one that holds
        ends the wait.
    :param deferrable: wait on the triggerer instead of a worker slot.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (
        *QUEUE_TEMPLATE_FIELDS,
        "min_backlog",
        "max_backlog",
        "min_backlog_bytes",
        "max_backlog_bytes",
    )
    ui_color = "#fbad41"

    def __init__(
        self,
        *,
        min_backlog: int | str | None = None,
        max_backlog: int | str | None = None,
        min_backlog_bytes: int | str | None = None,
        max_backlog_bytes: int | str | None = None,
        min_oldest_age: timedelta | float | None = None,
        max_oldest_age: timedelta | float | None = None,
        match: str = "all",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.min_backlog = min_backlog
        self.max_backlog = max_backlog
        self.min_backlog_bytes = min_backlog_bytes
        self.max_backlog_bytes = max_backlog_bytes
        self.min_oldest_age = min_oldest_age
        self.max_oldest_age = max_oldest_age
        self.match = match
        self.deferrable = deferrable
        if not any(isinstance(v, str) for v in (min_backlog, max_backlog, min_backlog_bytes, max_backlog_bytes)):
            self.criteria  # noqa: B018 - fail at DAG parse time when the thresholds are wrong

    @property
    def criteria(self) -> BacklogCriteria:
        return BacklogCriteria.build(
            min_backlog=self.min_backlog,
            max_backlog=self.max_backlog,
            min_backlog_bytes=self.min_backlog_bytes,
            max_backlog_bytes=self.max_backlog_bytes,
            min_oldest_age=self.min_oldest_age,
            max_oldest_age=self.max_oldest_age,
            match=self.match,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            metrics = self.hook.get_metrics(self.queue_ref)
        except CloudflareQueuesError as err:
            if err.retryable:
                self.log.warning("Reading the backlog failed (%s); poking again", err)
                return PokeReturnValue(is_done=False)
            raise
        met, explanation = evaluate(self.criteria, metrics, int(time.time() * 1000))
        self.log.info("Queue %s: %s", self.queue_ref, explanation)
        return PokeReturnValue(is_done=met, xcom_value=metrics.model_dump() if met else None)

    @closes_hook
    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(  # raises TaskDeferred: Airflow resumes the task in execute_complete
            trigger=CloudflareQueuesBacklogTrigger(
                cloudflare_queue=self.queue_ref,
                criteria=self.criteria.to_dict(),
                poll_interval=self.poke_interval,
                timeout_at=time.time() + self.timeout,
                account_id=self.account_id or None,
                cloudflare_queues_conn_id=self.cloudflare_queues_conn_id,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return None  # not reached

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if event and event.get("status") == "timeout":
            raise AirflowSensorTimeout(f"Sensor on queue {self.queue_ref} timed out: {event.get('message')}")
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "the trigger ended without an event")
            raise AirflowException(f"Waiting for the backlog of queue {self.queue_ref} failed: {message}")
        self.log.info("Queue %s: %s", self.queue_ref, event.get("message"))
        metrics: dict[str, Any] = event["metrics"]
        return metrics
