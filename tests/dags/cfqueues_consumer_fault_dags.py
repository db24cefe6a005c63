"""DAGs for the consumer-fault tests: the user's own code fails (a database outage, a slow task that times out)."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPullAndAckOperator

START = datetime(2026, 1, 1)


def load_order(message: PulledMessage, db_path: str) -> None:
    """
    Insert the order into SQLite; raises ``sqlite3.OperationalError`` at once while the database is gone
    (its folder cannot be found). The drain's two workers write concurrently: like any database client,
    a writer waits for the other's lock (up to 30 s) rather than failing the order on a busy machine.
    """
    db = sqlite3.connect(db_path, timeout=30)
    try:
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS orders (n INTEGER PRIMARY KEY)")
            db.execute("INSERT OR IGNORE INTO orders (n) VALUES (?)", (message.body["n"],))
    finally:
        db.close()


with DAG(
    "cfq_outage", schedule=None, start_date=START, params={"queue": "orders", "db_path": "/tmp/orders.db"}
) as outage_dag:
    CloudflareQueuesPullAndAckOperator(
        task_id="load",
        cloudflare_queue="{{ params.queue }}",
        process=load_order,
        process_kwargs={"db_path": "{{ params.db_path }}"},
        concurrency=2,
        retries=0,
    )


def record_slowly(message: PulledMessage, log_path: str) -> None:
    """Takes 0.1 s per message, then appends its id to ``log_path`` (so a line means: processed)."""
    time.sleep(0.1)
    with Path(log_path).open("a") as log:
        log.write(f"{message.id}\n")


with DAG("cfq_timeout", schedule=None, start_date=START, params={"queue": "slow", "log_path": "/tmp/slow.log"}) as (
    timeout_dag
):
    CloudflareQueuesPullAndAckOperator(
        task_id="drain",
        cloudflare_queue="{{ params.queue }}",
        process=record_slowly,
        process_kwargs={"log_path": "{{ params.log_path }}"},
        batch_size=10,
        concurrency=4,
        visibility_timeout=120,
        execution_timeout=timedelta(seconds=2),
        retries=0,
    )
