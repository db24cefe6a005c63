"""
Two DAGs routing one queue, written by two people who did not coordinate: one names the queue by its
id (``CFQUEUES_SPLIT_QUEUE_ID``), the other by its name; their pull settings differ. The end-to-end
split test runs them in one triggerer, then in two, then in the documented pinned deployment.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

QUEUE_NAME = "split-shop"
SETTINGS = {
    "order": {"cloudflare_queue": QUEUE_NAME, "poll_interval": 2, "batch_size": 100},
    "refund": {
        "cloudflare_queue": os.environ.get("CFQUEUES_SPLIT_QUEUE_ID", QUEUE_NAME),
        "poll_interval": 3,
        "batch_size": 50,
        "max_messages_per_event": 250,
    },
}


def split_dag(kind: str) -> DAG:
    trigger = MessageQueueTrigger(
        scheme="cloudflare+queues",
        max_poll_interval=5,
        message_filter={"field": "kind", "equals": kind},
        **SETTINGS[kind],
    )
    watcher = AssetWatcher(name=f"split_{kind}s", trigger=trigger)
    asset = Asset(f"split_{kind}s", uri=f"cloudflare-queues://{QUEUE_NAME}/{kind}s", watchers=[watcher])
    with DAG(dag_id=f"cfqueues_split_{kind}s", schedule=[asset], start_date=datetime(2026, 1, 1), catchup=False) as dag:

        @task(task_id="handle")
        def handle(triggering_asset_events: Any = None) -> None:
            """Nothing to do: the test reads the stored asset events."""

        handle()
    return dag


orders_dag = split_dag("order")
refunds_dag = split_dag("refund")
