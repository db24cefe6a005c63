"""
ETL through a Cloudflare queue: extract records, push them, wait until the backlog holds them all,
then drain the queue into a SQLite table with per-message ack, and check the row count.

Loading is idempotent (``INSERT OR REPLACE`` keyed on ``order_id``): Cloudflare Queues delivers at
least once, so a message can arrive twice (after a lost push answer or an expired lease).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.operators.queues import (
    CloudflareQueuesPullAndAckOperator,
    CloudflareQueuesPushOperator,
)
from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor

QUEUE = "example-orders"
SCHEMA = "CREATE TABLE IF NOT EXISTS orders (order_id INTEGER PRIMARY KEY, sku TEXT, qty INTEGER, amount_cents INTEGER)"


def load_orders(messages: list[PulledMessage], db_path: str) -> None:
    """Batch mode: one transaction per pulled batch; raising retries the whole batch."""
    with sqlite3.connect(db_path, timeout=30) as db:
        db.execute(SCHEMA)
        db.executemany(
            "INSERT OR REPLACE INTO orders VALUES (:order_id, :sku, :qty, :amount_cents)",
            [message.body for message in messages],
        )


with DAG(
    dag_id="cfqueues_example_etl",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "records": Param(500, type="integer", minimum=1),
        "db_path": Param("/tmp/cfqueues_example_etl.sqlite", type="string"),  # noqa: S108 - an example
    },
    tags=["example", "cloudflare-queues"],
) as dag:

    @task
    def reset_table(params: dict[str, Any] | None = None) -> None:
        assert params is not None
        with sqlite3.connect(params["db_path"]) as db:
            db.execute(SCHEMA)
            db.execute("DELETE FROM orders")

    @task
    def extract(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        assert params is not None
        return [
            {"order_id": n, "sku": f"SKU-{n % 37:03d}", "qty": n % 5 + 1, "amount_cents": 199 * (n % 5 + 1)}
            for n in range(params["records"])
        ]

    records = extract()
    push = CloudflareQueuesPushOperator(task_id="push", cloudflare_queue=QUEUE, messages=records)
    wait = CloudflareQueuesBacklogSensor(
        task_id="wait_for_backlog",
        cloudflare_queue=QUEUE,
        min_backlog="{{ params.records }}",
        poke_interval=1,
        timeout=300,
    )
    load = CloudflareQueuesPullAndAckOperator(
        task_id="load",
        cloudflare_queue=QUEUE,
        process=load_orders,
        process_mode="batch",
        process_kwargs={"db_path": "{{ params.db_path }}"},
        batch_size=100,
        max_messages="{{ params.records }}",
        visibility_timeout=timedelta(minutes=2),
        concurrency=2,
    )

    @task
    def verify(summary: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert params is not None
        with sqlite3.connect(params["db_path"]) as db:
            (rows,) = db.execute("SELECT COUNT(*) FROM orders").fetchone()
        if rows != params["records"]:
            raise ValueError(f"expected {params['records']} rows, found {rows}")
        return {"rows": rows, "acked": summary["acked"], "backlog_after": summary["backlog_after"]}

    reset_table() >> records
    push >> wait >> load
    verify(load.output)
