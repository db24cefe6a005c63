"""Triggers that run on the triggerer: they poll Cloudflare Queues with the hook's async methods."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from .._compat import BaseTrigger, TriggerEvent
from ..api.backlog import BacklogCriteria, evaluate
from ..api.errors import CloudflareQueuesError
from ..hooks.queues import CloudflareQueuesHook


class CloudflareQueuesBacklogTrigger(BaseTrigger):
    """
    Poll a queue's metrics (which leases nothing) until the backlog criteria hold, then fire one event
    ``{"status": "success", "metrics": {...}, "message": ...}``. Transient API errors are logged and
    polled again; authentication, not-found and validation errors fire ``{"status": "error", ...}``;
    past ``timeout_at`` it fires ``{"status": "timeout", ...}``.
    The criteria are evaluated by the same function as the sensor's ``poke``.

    :param queue: queue id or name.
    :param criteria: the thresholds, as :meth:`BacklogCriteria.to_dict` gives them.
    :param poll_interval: seconds between polls.
    :param timeout_at: give up at this time (seconds since the epoch) with a ``{"status": "timeout"}``
        event; the triggerer enforces the deferral timeout too, but ``dag.test()`` does not.
    :param account_id: account id (default: the connection's).
    :param cloudflare_queues_conn_id: the Airflow connection.
    """

    def __init__(
        self,
        *,
        queue: str | None,
        criteria: dict[str, Any],
        poll_interval: float = 30.0,
        timeout_at: float | None = None,
        account_id: str | None = None,
        cloudflare_queues_conn_id: str = CloudflareQueuesHook.default_conn_name,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.queue = queue
        self.criteria = dict(criteria)
        self.poll_interval = float(poll_interval)
        self.timeout_at = timeout_at
        self.account_id = account_id
        self.cloudflare_queues_conn_id = cloudflare_queues_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "queue": self.queue,
                "criteria": dict(self.criteria),
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
                "account_id": self.account_id,
                "cloudflare_queues_conn_id": self.cloudflare_queues_conn_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        criteria = BacklogCriteria(**self.criteria)
        hook = CloudflareQueuesHook(self.cloudflare_queues_conn_id, queue=self.queue, account_id=self.account_id)
        try:
            while True:
                try:
                    metrics = await hook.aget_metrics()
                except CloudflareQueuesError as err:
                    if not err.retryable:
                        yield TriggerEvent(  # type: ignore[no-untyped-call]
                            {"status": "error", "message": str(err), "error_type": type(err).__name__}
                        )
                        return
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
                    self.log.info("Queue %s: %s", self.queue, explanation)
                if self.timeout_at is not None and time.time() + self.poll_interval > self.timeout_at:
                    yield TriggerEvent(  # type: ignore[no-untyped-call]
                        {"status": "timeout", "message": f"the backlog criteria were not met in time ({explanation})"}
                    )
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await hook.aclose()
