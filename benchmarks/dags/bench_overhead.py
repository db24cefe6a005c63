"""The task-overhead benchmark's DAG: a no-op task beside a PullAndAck on an empty queue."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPullAndAckOperator

with DAG("cfq_bench_overhead", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

    @task
    def noop() -> None:
        return None

    noop() >> CloudflareQueuesPullAndAckOperator(task_id="drain_empty", cloudflare_queue="empty", process=print)
