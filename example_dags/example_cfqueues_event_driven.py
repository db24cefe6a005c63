"""
Event-driven scheduling (Airflow 3): a DAG run starts when messages arrive in a Cloudflare queue.

``MessageQueueTrigger(scheme="cloudflare+queues", ...)`` (from the common-messaging provider) runs
:class:`~airflow_provider_cfqueues.triggers.queues.CloudflareQueuesMessageTrigger` on the triggerer.
It pulls up to ``max_messages_per_event`` messages into one event, so a burst starts one DAG run,
not one per message. The messages stay leased for ``visibility_timeout`` seconds: the DAG processes
them and then acks their lease ids. If the run fails or never starts, the leases expire and the
messages come back for another run: at-least-once end to end. Size ``visibility_timeout`` above the
scheduling delay plus the processing time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_cfqueues.operators.queues import CloudflareQueuesAckOperator

QUEUE = "example-inbox"

trigger = MessageQueueTrigger(
    scheme="cloudflare+queues",
    cloudflare_queue=QUEUE,
    max_messages_per_event=100,
    visibility_timeout=600,
    poll_interval=2,
)
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
        """Process every message of the events that started this run; return their lease ids."""
        leases = []
        for event in triggering_asset_events[inbox]:
            for message in event.extra["payload"]["messages"]:
                print(f"processing message {message['id']} (attempt {message['attempts']}): {message['body']}")
                leases.append(message["lease_id"])
        return leases

    CloudflareQueuesAckOperator(task_id="ack", cloudflare_queue=QUEUE, acks=handle())
