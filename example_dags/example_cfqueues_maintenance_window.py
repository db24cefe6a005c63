"""
A maintenance window on a live queue: pause delivery, push corrected messages (a backfill after a bad
deploy), then resume. While delivery is paused the queue keeps every push but refuses pulls, so the
consumers (PullAndAck with ``on_paused="skip"``, the default) skip instead of taking half of the
corrections.

Resuming is a *teardown* task: it runs even when the backfill fails, so the queue is never left
paused, while the DAG run still fails then (a teardown does not decide the run's state). Pausing and
resuming are idempotent: a retried task or a re-run does no harm.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_cfqueues.operators.admin import (
    CloudflareQueuesPauseDeliveryOperator,
    CloudflareQueuesResumeDeliveryOperator,
)
from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPushOperator

QUEUE = "example-orders"

with DAG(
    dag_id="cfqueues_example_maintenance_window",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "first_order": Param(1000, type="integer", minimum=0),
        "orders": Param(250, type="integer", minimum=1),
    },
    tags=["example", "cloudflare-queues"],
) as dag:
    pause = CloudflareQueuesPauseDeliveryOperator(task_id="pause_delivery", cloudflare_queue=QUEUE)

    @task
    def corrected_orders(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The orders the bad deploy pushed wrongly, rebuilt (here: generated)."""
        assert params is not None
        first = params["first_order"]
        return [
            {"order_id": n, "sku": f"SKU-{n % 37:03d}", "qty": n % 5 + 1, "amount_cents": 199 * (n % 5 + 1)}
            for n in range(first, first + params["orders"])
        ]

    backfill = CloudflareQueuesPushOperator(task_id="backfill", cloudflare_queue=QUEUE, messages=corrected_orders())
    resume = CloudflareQueuesResumeDeliveryOperator(task_id="resume_delivery", cloudflare_queue=QUEUE)

    @task
    def report(pushed: dict[str, Any]) -> dict[str, int]:
        return {"pushed": pushed["messages"], "backlog_after": pushed["backlog_count"]}

    pause >> backfill >> resume.as_teardown(setups=pause)
    report(backfill.output)
