"""The backlog trigger: the deferred backlog sensor's wait, on the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from .._compat import BaseTrigger, TriggerEvent
from ..api import units
from ..api.backlog import BacklogCriteria, evaluate
from ..api.errors import CloudflareQueuesError
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

    _serialized_module = "airflow_provider_cfqueues.triggers.queues"  # its public path: serialized ones stay valid
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
