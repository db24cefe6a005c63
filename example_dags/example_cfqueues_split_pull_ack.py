"""
The split pattern: lease messages in one task, process each in its own mapped task, then ack the
ones that succeeded and retry the others — in a task that runs whatever happened upstream
(``trigger_rule="all_done"``).

Nothing is acked before its processing task succeeded. A message whose processing failed is retried
and comes back in the next run (``attempts`` + 1). If the DAG run dies before the ack task, the
leases expire (``visibility_timeout``) and every message comes back: at-least-once end to end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_cfqueues.operators.queues import (
    CloudflareQueuesAckOperator,
    CloudflareQueuesPullOperator,
)

QUEUE = "example-jobs"

with DAG(
    dag_id="cfqueues_example_split_pull_ack",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare-queues"],
) as dag:
    pulled = CloudflareQueuesPullOperator(
        task_id="pull",
        cloudflare_queue=QUEUE,
        max_messages=20,
        visibility_timeout=timedelta(minutes=10),
        expected_processing_time=timedelta(minutes=2),
    )

    @task(retries=0)
    def handle(message: dict[str, Any]) -> str:
        job = message["body"]
        if job.get("flaky") and message["attempts"] == 1:
            raise RuntimeError(f"job {job['job']} failed on its first attempt; its message will be retried")
        print(f"processed job {job['job']} (attempt {message['attempts']})")
        return str(message["lease_id"])

    done = handle.expand(message=pulled.output)

    CloudflareQueuesAckOperator(
        task_id="ack",
        cloudflare_queue=QUEUE,
        acks=done,
        retry_unacked_from=pulled.output,
        message_retry_delay=0,
        trigger_rule="all_done",
    )
