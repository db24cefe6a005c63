"""The purge trigger: a deferred purge waits on the triggerer until the queue is empty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from .._compat import BaseTrigger, TriggerEvent
from ..api import units
from ..api.errors import CloudflareQueuesError
from ..hooks.queues import CloudflareQueuesHook
from ._arguments import QueueTriggerArguments


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

    _serialized_module = "airflow_provider_cfqueues.triggers.queues"  # its public path: serialized ones stay valid
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
