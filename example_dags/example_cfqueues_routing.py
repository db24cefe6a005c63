"""
Two DAGs fed by one queue (Airflow 3.3+): orders start one, refunds the other.

Both asset watchers read ``example-shop``: the triggerer runs one pull loop for the queue (however
the watchers spell it and whatever their pull settings) and shows each batch to both; each watcher's
``message_filter`` takes the messages it wants, in one event. A message is acked once the asset event
of the watcher that took it is stored; one that neither wanted goes to ``example-shop-unrouted``
(``on_rejected="poison"``, which every watcher of the queue must say alike), where someone can look
at it. The loop pulls only while it holds every watcher of the queue: run the watchers of a queue in
one triggerer (docs/airflow.md, "One queue, many DAGs"); after a restart it waits until both are back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

QUEUE = "example-shop"
#: what the two watchers share: the queue, how it is pulled, and what becomes of a message neither wants
STREAM = {
    "scheme": "cloudflare+queues",
    "cloudflare_queue": QUEUE,
    "poll_interval": 2,
    "max_poll_interval": 10,  # orders start within 10 s even after a quiet hour (8,640 pulls a quiet day)
    "max_messages_per_event": 500,  # a burst of up to 500 messages is one event per DAG
    "on_rejected": "poison",
    "poison_queue": "example-shop-unrouted",
}


def shop_dag(kind: str) -> DAG:
    """The DAG of one kind of message: its watcher takes only those."""
    trigger = MessageQueueTrigger(**STREAM, message_filter={"field": "kind", "equals": kind})
    watcher = AssetWatcher(name=f"shop_{kind}s", trigger=trigger)
    asset = Asset(f"cloudflare-queues://{QUEUE}/{kind}s", watchers=[watcher])
    with DAG(
        dag_id=f"cfqueues_example_{kind}s",
        schedule=[asset],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["example", "cloudflare-queues"],
    ) as dag:

        @task(task_id=f"handle_{kind}s")
        def handle(triggering_asset_events: Any = None) -> list[str]:
            """Process the messages this DAG's watcher took; return their ids."""
            handled = []
            for event in triggering_asset_events[asset]:
                for message in event.extra["payload"]["messages"]:
                    print(f"{kind} {message['body'].get('id')} (message {message['id']})")
                    handled.append(message["id"])
            return handled

        handle()
    return dag


orders_dag = shop_dag("order")
refunds_dag = shop_dag("refund")
