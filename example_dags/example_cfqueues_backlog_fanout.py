"""
Backlog-triggered fan-out: a deferrable sensor waits on the triggerer until at least N messages have
piled up, then mapped PullAndAck tasks drain the queue in parallel, each up to its share.

The producer is elsewhere (a Worker, another DAG, ``CloudflareQueuesHook.push_messages``); this DAG
only consumes. ``record_event`` is idempotent (keyed on the message id), as at-least-once requires.
"""

from __future__ import annotations

import json
import math
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
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPullAndAckOperator
from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor

QUEUE = "example-events"
SHARDS = 4
SCHEMA = "CREATE TABLE IF NOT EXISTS events (message_id TEXT PRIMARY KEY, payload TEXT)"


def record_event(message: PulledMessage, db_path: str) -> None:
    with sqlite3.connect(db_path, timeout=30) as db:
        db.execute(SCHEMA)
        db.execute("INSERT OR REPLACE INTO events VALUES (?, ?)", (message.id, json.dumps(message.body)))


with DAG(
    dag_id="cfqueues_example_backlog_fanout",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "min_backlog": Param(200, type="integer", minimum=1),
        "db_path": Param("/tmp/cfqueues_example_events.sqlite", type="string"),  # noqa: S108 - an example
    },
    tags=["example", "cloudflare-queues"],
) as dag:
    wait = CloudflareQueuesBacklogSensor(
        task_id="wait_for_backlog",
        cloudflare_queue=QUEUE,
        min_backlog="{{ params.min_backlog }}",
        deferrable=True,
        poke_interval=2,
        timeout=3600,
    )

    @task
    def shares(metrics: dict[str, Any]) -> list[int]:
        """Split what the sensor saw into one share per drain task."""
        return [math.ceil(metrics["backlog_count"] / SHARDS)] * SHARDS

    drain = CloudflareQueuesPullAndAckOperator.partial(
        task_id="drain",
        cloudflare_queue=QUEUE,
        process=record_event,
        process_kwargs={"db_path": "{{ params.db_path }}"},
        batch_size=50,
        visibility_timeout=timedelta(minutes=5),
        message_retry_delay=10,
    ).expand(max_messages=shares(wait.output))

    @task
    def report(summaries: list[dict[str, Any]]) -> dict[str, Any]:
        backlog = CloudflareQueuesHook(queue=QUEUE).get_metrics().backlog_count
        acked = sum(summary["acked"] for summary in summaries)
        return {"drain_tasks": len(summaries), "acked": acked, "backlog_after": backlog}

    report(drain.output)
