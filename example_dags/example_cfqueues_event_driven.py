"""
Event-driven scheduling (Airflow 3): a DAG run starts when messages arrive in a Cloudflare queue.

``MessageQueueTrigger(scheme="cloudflare+queues", ...)`` (from the common-messaging provider) runs
:class:`~airflow_provider_cfqueues.triggers.message.CloudflareQueuesMessageTrigger` on the triggerer.
On Airflow 3.3+ it acks each message once its asset event is stored in Airflow's metadata database
(``ack="persisted"``, the default): the DAG acks nothing. A triggerer that dies between storing an
event and acking its message makes that message come again after its lease, so process by message
id, idempotently. The messages pulled together make **one** asset event (up to
``max_messages_per_event``, default 100, gathered over several pulls), so a burst starts one run,
not one per message; a burst larger than that makes several events in quick succession, and Airflow
3.3 starts a run for the first and leaves the others for the next event (apache/airflow#56050).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

QUEUE = "example-inbox"

trigger = MessageQueueTrigger(scheme="cloudflare+queues", cloudflare_queue=QUEUE, poll_interval=2)
inbox = Asset(f"cloudflare-queues://{QUEUE}", watchers=[AssetWatcher(name="cloudflare_inbox", trigger=trigger)])

with DAG(
    dag_id="cfqueues_example_event_driven",
    schedule=[inbox],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare-queues"],
) as dag:

    @task
    def handle(triggering_asset_events: Any = None) -> list[str]:
        """Process every message of the events that started this run; return their ids."""
        handled = []
        for event in triggering_asset_events[inbox]:
            for message in event.extra["payload"]["messages"]:
                print(f"processing message {message['id']} (attempt {message['attempts']}): {message['body']}")
                handled.append(message["id"])
        return handled

    handle()
