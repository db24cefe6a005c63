"""DAGs for the operator and sensor tests. Queues, thresholds and connections come from params."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_cfqueues.api.models import OutgoingMessage, PulledMessage
from airflow_provider_cfqueues.operators.queues import (
    CloudflareQueuesPullAndAckOperator,
    CloudflareQueuesPullOperator,
    CloudflareQueuesPushOperator,
)
from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor

START = datetime(2026, 1, 1)
QUEUE_PARAMS = {"queue": Param("test-queue", type="string")}


def fail_marked(message: PulledMessage) -> None:
    """Fails for bodies marked ``{"fail": true}``."""
    if isinstance(message.body, dict) and message.body.get("fail"):
        raise ValueError(f"refusing message {message.body.get('n')}")


with DAG(
    "cfq_test_push",
    schedule=None,
    start_date=START,
    params={**QUEUE_PARAMS, "conn_id": "cloudflare_queues_default", "delay": "0"},
) as push_dag:

    @task
    def make_messages() -> list[OutgoingMessage]:
        return [OutgoingMessage(body={"n": n}, delay_seconds=0) for n in range(3)] + [
            OutgoingMessage(body="delayed", content_type="text", delay_seconds=3600)
        ]

    CloudflareQueuesPushOperator(
        task_id="push_objects", cloudflare_queue="{{ params.queue }}", messages=make_messages()
    )
    CloudflareQueuesPushOperator(
        task_id="push_dict_with_body_key",
        cloudflare_queue="{{ params.queue }}",
        messages={"body": "x", "content_type": "text"},
    )
    CloudflareQueuesPushOperator(
        task_id="push_templated",
        cloudflare_queue="{{ params.queue }}",
        cloudflare_queues_conn_id="{{ params.conn_id }}",
        messages="run {{ run_id }}",
        delay_seconds="{{ params.delay }}",
    )
    CloudflareQueuesPushOperator.partial(task_id="push_mapped", cloudflare_queue="{{ params.queue }}").expand(
        messages=[[{"m": 1}, {"m": 2}], [{"m": 3}], ["a", "b", "c"]]
    )


with DAG("cfq_test_drain", schedule=None, start_date=START, params=QUEUE_PARAMS) as drain_dag:
    CloudflareQueuesPullAndAckOperator(
        task_id="drain",
        cloudflare_queue="{{ params.queue }}",
        process="tests.dags.cfqueues_test_dags.fail_marked",
        batch_size=10,
        concurrency=4,
        max_attempts=2,  # retry_delay: the provider's backoff
        on_poison="{{ params.queue }}-poison",
        fail_on_error=False,
    )


with DAG("cfq_test_drain_strict", schedule=None, start_date=START, params=QUEUE_PARAMS) as strict_dag:
    CloudflareQueuesPullAndAckOperator(
        task_id="drain",
        cloudflare_queue="{{ params.queue }}",
        process=fail_marked,
        message_retry_delay=3600,
        retries=0,
    )


with DAG("cfq_test_pull_to_xcom", schedule=None, start_date=START, params={**QUEUE_PARAMS, "max": 1000}) as xcom_dag:
    CloudflareQueuesPullOperator(
        task_id="take", cloudflare_queue="{{ params.queue }}", max_messages="{{ params.max }}", ack=True
    )
    CloudflareQueuesPullOperator(
        task_id="take_too_much",
        cloudflare_queue="{{ params.queue }}-big",
        max_messages=1000,
        max_xcom_bytes=2_000,
        ack=True,
        retries=0,
    )


SENSOR_PARAMS = {**QUEUE_PARAMS, "conn_id": "cloudflare_queues_default", "min": 1, "max": 1_000_000}
SENSOR_ARGS: dict[str, Any] = {
    "cloudflare_queue": "{{ params.queue }}",
    "min_backlog": "{{ params.min }}",
    "max_backlog": "{{ params.max }}",
    "cloudflare_queues_conn_id": "{{ params.conn_id }}",
    "poke_interval": 0.2,
    "timeout": 3,
    "soft_fail": True,
}
sensor_dags = {}
for mode in ("poke", "reschedule", "deferrable"):
    with DAG(f"cfq_test_sensor_{mode}", schedule=None, start_date=START, params=SENSOR_PARAMS) as sensor_dags[mode]:
        if mode == "deferrable":
            CloudflareQueuesBacklogSensor(task_id="wait", deferrable=True, **SENSOR_ARGS)
        else:
            CloudflareQueuesBacklogSensor(task_id="wait", mode=mode, **SENSOR_ARGS)


with DAG("cfq_test_paused", schedule=None, start_date=START, params=QUEUE_PARAMS) as paused_dag:
    CloudflareQueuesPullAndAckOperator(
        task_id="drain_skips", cloudflare_queue="{{ params.queue }}", process=fail_marked
    )
    CloudflareQueuesPullAndAckOperator(
        task_id="drain_succeeds", cloudflare_queue="{{ params.queue }}", process=fail_marked, on_paused="succeed"
    )
    CloudflareQueuesPullAndAckOperator(
        task_id="drain_fails", cloudflare_queue="{{ params.queue }}", process=fail_marked, on_paused="fail", retries=0
    )
    CloudflareQueuesPullOperator(task_id="pull_skips", cloudflare_queue="{{ params.queue }}")


def keep(message: PulledMessage) -> None:
    """Accepts every message."""


with DAG("cfq_test_map_queues", schedule=None, start_date=START) as map_queues_dag:
    # one mapped task per Cloudflare queue; Airflow's executor queue (queue=) stays
    pushed = CloudflareQueuesPushOperator.partial(task_id="push", messages=[1, 2, 3]).expand(
        cloudflare_queue=["map-a", "map-b"]
    )
    drained = CloudflareQueuesPullAndAckOperator.partial(task_id="drain", process=keep, message_retry_delay=0).expand(
        cloudflare_queue=["map-a", "map-b"]
    )
    empty = CloudflareQueuesBacklogSensor.partial(task_id="empty", max_backlog=0, poke_interval=0.1).expand(
        cloudflare_queue=["map-a", "map-b"]
    )
    pushed >> drained >> empty
    nothing = CloudflareQueuesPullAndAckOperator(
        task_id="nothing", cloudflare_queue="map-a", process=keep, max_messages=0
    )
    empty >> nothing


with DAG("cfq_test_hook_lifecycle", schedule=None, start_date=START) as lifecycle_dag:
    # every task execution uses one hook (one keep-alive connection) and closes it when done
    push = CloudflareQueuesPushOperator(task_id="push", cloudflare_queue="life", messages=list(range(30)))
    pokes = CloudflareQueuesBacklogSensor(
        task_id="pokes", cloudflare_queue="life", max_backlog=0, poke_interval=0.1, timeout=0.8, soft_fail=True
    )
    drain = CloudflareQueuesPullAndAckOperator(
        task_id="drain", cloudflare_queue="life", process=keep, batch_size=5, concurrency=2, trigger_rule="all_done"
    )
    push >> pokes >> drain


with DAG(
    "cfq_test_mapped_defaults",
    schedule=None,
    start_date=START,
    default_args={"queue": "cfq-workers", "retry_delay": timedelta(seconds=300)},
) as mapped_defaults_dag:
    # no cloudflare_queue: the connection's queue extra; no message_retry_delay: the provider's backoff
    CloudflareQueuesPullAndAckOperator.partial(task_id="drain", process=fail_marked, fail_on_error=False).expand(
        max_messages=[5, 5]
    )


with DAG("cfq_test_peek_purge", schedule=None, start_date=START, params=QUEUE_PARAMS) as peek_purge_dag:
    # peek, select the known-poison messages with a function, purge those by ref: no attempt spent
    from airflow_provider_cfqueues.operators.peek import CloudflareQueuesPeekOperator
    from airflow_provider_cfqueues.operators.purge import CloudflareQueuesPurgeMessagesOperator

    peeked = CloudflareQueuesPeekOperator(task_id="peek", cloudflare_queue="{{ params.queue }}", batch_size=50)

    @task
    def select_poison(messages: list[dict[str, Any]]) -> list[str]:
        return [m["ref"] for m in messages if isinstance(m["body"], dict) and m["body"].get("fail")]

    CloudflareQueuesPurgeMessagesOperator(
        task_id="purge", cloudflare_queue="{{ params.queue }}", refs=select_poison(peeked.output)
    )


with DAG("cfq_test_purge_templates", schedule=None, start_date=START, params=QUEUE_PARAMS) as purge_templates_dag:
    # refs from templates: a list rendered as text is read back; an XCom pull that found nothing ("None")
    # fails the task before anything is sent
    from airflow_provider_cfqueues.operators.peek import CloudflareQueuesPeekOperator
    from airflow_provider_cfqueues.operators.purge import CloudflareQueuesPurgeMessagesOperator

    peeked_for_templates = CloudflareQueuesPeekOperator(
        task_id="peek", cloudflare_queue="{{ params.queue }}", batch_size=50
    )

    @task
    def first_two(messages: list[dict[str, Any]]) -> list[str]:
        return [m["ref"] for m in messages[:2]]

    selected = first_two(peeked_for_templates.output)
    selected >> CloudflareQueuesPurgeMessagesOperator(
        task_id="purge_rendered_list",
        cloudflare_queue="{{ params.queue }}",
        refs="{{ ti.xcom_pull(task_ids='first_two') }}",  # renders ['…', '…'] (Python's form, not JSON)
    )
    selected >> CloudflareQueuesPurgeMessagesOperator(
        task_id="purge_rendered_none",
        cloudflare_queue="{{ params.queue }}",
        refs="{{ ti.xcom_pull(task_ids='no_such_task') }}",  # renders None
    )


with DAG(
    "cfq_test_slow_retries",
    schedule=None,
    start_date=START,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10), "retry_exponential_backoff": True},
) as slow_retries_dag:

    @task
    def flaky(**context: Any) -> int:
        """Fails its first try: under dag.test() the retry would wait ten real minutes."""
        if context["ti"].try_number == 1:
            raise ConnectionError("warehouse busy")
        return int(context["ti"].try_number)

    flaky()
