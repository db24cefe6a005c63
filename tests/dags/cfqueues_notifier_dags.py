"""A DAG whose task and DAG callbacks notify a Cloudflare queue: success, retry and failure."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_cfqueues.notifications.cloudflare_queues import CloudflareQueuesNotifier

with DAG(
    "cfq_test_notifier",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    on_failure_callback=CloudflareQueuesNotifier(
        cloudflare_queue="alerts", message={"event": "dag failed", "dag": "{{ dag.dag_id }}"}
    ),
) as notifier_dag:

    @task(
        on_success_callback=CloudflareQueuesNotifier(
            cloudflare_queue="events", message={"event": "loaded", "task": "{{ ti.task_id }}", "run": "{{ run_id }}"}
        )
    )
    def load() -> None:
        """Succeeds."""

    @task(
        retries=1,
        retry_delay=timedelta(seconds=0),
        on_retry_callback=CloudflareQueuesNotifier(cloudflare_queue="alerts"),  # the default message
    )
    def flaky(**context: Any) -> None:
        """Fails on its first try only."""
        if context["ti"].try_number == 1:
            raise ConnectionError("warehouse busy")

    @task(on_failure_callback=CloudflareQueuesNotifier())  # the connection's queue extra
    def broken() -> None:
        raise ValueError("bad input file")

    load() >> flaky() >> broken()
