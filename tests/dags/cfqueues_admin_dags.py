"""DAGs for the administration operator tests. Queues, settings and connections come from params."""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.models.param import Param

from airflow_provider_cfqueues.operators.admin import (
    CloudflareQueuesCreateQueueOperator,
    CloudflareQueuesDeleteQueueOperator,
    CloudflareQueuesPauseDeliveryOperator,
    CloudflareQueuesPurgeOperator,
    CloudflareQueuesResumeDeliveryOperator,
    CloudflareQueuesUpdateConsumerOperator,
)
from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPushOperator

START = datetime(2026, 1, 1)

with DAG(
    "cfq_test_admin_lifecycle",
    schedule=None,
    start_date=START,
    params={"queue": Param("admin-q", type="string"), "batch_size": "10", "retry_delay": "30", "deferrable": True},
) as lifecycle_dag:
    create = CloudflareQueuesCreateQueueOperator(
        task_id="create",
        cloudflare_queue="{{ params.queue }}",
        batch_size="{{ params.batch_size }}",
        message_retry_delay="{{ params.retry_delay }}",
        visibility_timeout=60,
        dead_letter_queue="{{ params.queue }}-dlq",
    )
    create_again = CloudflareQueuesCreateQueueOperator(task_id="create_again", cloudflare_queue="{{ params.queue }}")
    update = CloudflareQueuesCreateQueueOperator(
        task_id="create_or_update", cloudflare_queue="{{ params.queue }}", max_retries=5, if_exists="update"
    )
    push = CloudflareQueuesPushOperator(task_id="push", cloudflare_queue="{{ params.queue }}", messages=list(range(25)))
    pause = CloudflareQueuesPauseDeliveryOperator(task_id="pause", cloudflare_queue="{{ params.queue }}")
    resume = CloudflareQueuesResumeDeliveryOperator(task_id="resume", cloudflare_queue="{{ params.queue }}")
    consumer = CloudflareQueuesUpdateConsumerOperator(
        task_id="update_consumer", cloudflare_queue="{{ params.queue }}", visibility_timeout=120, dead_letter_queue=""
    )
    purge = CloudflareQueuesPurgeOperator(
        task_id="purge", cloudflare_queue="{{ params.queue }}", confirm=True, deferrable=True, poll_interval=0.2
    )
    purge_sync = CloudflareQueuesPurgeOperator(
        task_id="purge_again", cloudflare_queue="{{ params.queue }}", confirm=True, poll_interval=0.2
    )
    delete = CloudflareQueuesDeleteQueueOperator(task_id="delete", cloudflare_queue="{{ params.queue }}")
    delete_again = CloudflareQueuesDeleteQueueOperator(task_id="delete_again", cloudflare_queue="{{ params.queue }}")
    create >> create_again >> update >> push >> pause >> resume >> consumer >> purge >> purge_sync
    purge_sync >> delete >> delete_again


with DAG(
    "cfq_test_admin_create",
    schedule=None,
    start_date=START,
    params={"queue": Param("admin-q", type="string"), "conn_id": "cloudflare_queues_default"},
) as create_dag:
    CloudflareQueuesCreateQueueOperator(
        task_id="create",
        cloudflare_queue="{{ params.queue }}",
        cloudflare_queues_conn_id="{{ params.conn_id }}",
        if_exists="fail",
        retries=0,
    )


with DAG(
    "cfq_test_admin_named_only",
    schedule=None,
    start_date=START,
    params={"q": "", "bs": "10"},
) as named_only_dag:
    # a template that renders empty must not reach the connection's default queue
    CloudflareQueuesDeleteQueueOperator(task_id="delete_empty", cloudflare_queue="{{ params.q }}", retries=0)
    CloudflareQueuesPurgeOperator(task_id="purge_empty", cloudflare_queue="{{ params.q }}", confirm=True, retries=0)
    CloudflareQueuesPauseDeliveryOperator(task_id="pause_unnamed", retries=0)  # no cloudflare_queue at all
    CloudflareQueuesUpdateConsumerOperator(task_id="consumer_unnamed", batch_size=7, retries=0)
    # every rendered setting is checked before the queue is created
    CloudflareQueuesCreateQueueOperator(
        task_id="create", cloudflare_queue="scratch-{{ params.bs }}", batch_size="{{ params.bs }}", retries=0
    )
