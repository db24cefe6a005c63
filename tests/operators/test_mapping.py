"""
Mapped equals plain: every operator and the sensor, built plain and through ``.partial().expand()`` /
``.expand_kwargs()``, with and without ``default_args`` holding Airflow's ``queue`` and
``retry_delay``, agree on every setting once unmapped, and the scheduler routes both the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_cfqueues.operators.admin import (
    CloudflareQueuesCreateQueueOperator,
    CloudflareQueuesDeleteQueueOperator,
    CloudflareQueuesPauseDeliveryOperator,
    CloudflareQueuesPurgeOperator,
    CloudflareQueuesResumeDeliveryOperator,
    CloudflareQueuesUpdateConsumerOperator,
)
from airflow_provider_cfqueues.operators.consume import CloudflareQueuesPullAndAckOperator
from airflow_provider_cfqueues.operators.events import (
    CloudflareQueuesAddR2NotificationRuleOperator,
    CloudflareQueuesRemoveR2NotificationRulesOperator,
)
from airflow_provider_cfqueues.operators.peek import CloudflareQueuesPeekOperator
from airflow_provider_cfqueues.operators.pull_ack import CloudflareQueuesAckOperator, CloudflareQueuesPullOperator
from airflow_provider_cfqueues.operators.purge import CloudflareQueuesPurgeMessagesOperator
from airflow_provider_cfqueues.operators.push import CloudflareQueuesPushOperator
from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

#: Airflow's bookkeeping, which differs between any two tasks (identity, how they were built)
INTERNALS = {
    "task_id",
    "task_group",
    "start_date",
    "end_date",
    "returns_dag_result",
    "_on_failure_fail_dagrun",
    "_BaseOperator__init_kwargs",
    "_BaseOperator__from_mapped",
    "_BaseOperator__instantiated",
    "_needs_expansion",
}

WORKERS = {"queue": "cfq-workers", "retry_delay": timedelta(seconds=300)}

#: (operator, the arguments both forms get, the argument that is mapped and its value)
CASES: list[tuple[type[Any], dict[str, Any], str, Any]] = [
    (CloudflareQueuesPushOperator, {"messages": [1]}, "cloudflare_queue", "orders"),
    (CloudflareQueuesPushOperator, {"cloudflare_queue": "orders"}, "messages", [1, 2]),
    (CloudflareQueuesPushOperator, {"messages": [1]}, "delay_seconds", 5),
    (CloudflareQueuesPullAndAckOperator, {"process": print}, "cloudflare_queue", "orders"),
    (CloudflareQueuesPullAndAckOperator, {"process": print, "message_retry_delay": 5}, "cloudflare_queue", "orders"),
    (CloudflareQueuesPullAndAckOperator, {"process": print, "cloudflare_queue": "orders"}, "max_messages", 50),
    (CloudflareQueuesPullAndAckOperator, {"process": print}, "message_retry_delay", 0),
    (CloudflareQueuesPullOperator, {"max_messages": 5}, "cloudflare_queue", "orders"),
    (CloudflareQueuesPullOperator, {"cloudflare_queue": "orders"}, "ack", True),
    (CloudflareQueuesAckOperator, {"acks": ["lease"]}, "cloudflare_queue", "orders"),
    (CloudflareQueuesAckOperator, {"acks": ["lease"], "cloudflare_queue": "orders"}, "message_retry_delay", 60),
    (CloudflareQueuesBacklogSensor, {"min_backlog": 1}, "cloudflare_queue", "orders"),
    (CloudflareQueuesBacklogSensor, {"cloudflare_queue": "orders"}, "max_backlog", 0),
    (CloudflareQueuesCreateQueueOperator, {"max_retries": 2, "message_retry_delay": 10}, "cloudflare_queue", "orders"),
    (CloudflareQueuesCreateQueueOperator, {"cloudflare_queue": "orders"}, "message_retry_delay", 10),
    (CloudflareQueuesDeleteQueueOperator, {}, "cloudflare_queue", "orders"),
    (CloudflareQueuesPauseDeliveryOperator, {}, "cloudflare_queue", "orders"),
    (CloudflareQueuesResumeDeliveryOperator, {}, "cloudflare_queue", "orders"),
    (CloudflareQueuesPurgeOperator, {"confirm": True}, "cloudflare_queue", "orders"),
    (CloudflareQueuesUpdateConsumerOperator, {"message_retry_delay": 10}, "cloudflare_queue", "orders"),
    (CloudflareQueuesPeekOperator, {"batch_size": 20}, "cloudflare_queue", "orders"),
    (CloudflareQueuesPurgeMessagesOperator, {"refs": ["r1"]}, "cloudflare_queue", "orders"),
    (CloudflareQueuesPurgeMessagesOperator, {"cloudflare_queue": "orders"}, "refs", ["r1", "r2"]),
    (CloudflareQueuesAddR2NotificationRuleOperator, {"bucket": "uploads"}, "cloudflare_queue", "orders"),
    (
        CloudflareQueuesAddR2NotificationRuleOperator,
        {"cloudflare_queue": "orders", "bucket": "uploads"},
        "prefix",
        "in/",
    ),
    (
        CloudflareQueuesRemoveR2NotificationRulesOperator,
        {"bucket": "uploads", "rule_ids": ["r"]},
        "cloudflare_queue",
        "q",
    ),
]

DEFAULTS = {
    "no default_args": {},
    "default_args with queue and retry_delay": {"default_args": WORKERS},
    "queue and retry_delay given": {"queue": "gpu", "retry_delay": timedelta(seconds=60)},
}


def _serialized(dag: Any) -> Any:
    """The DAG as the scheduler sees it (serialized, then read back)."""
    try:
        from airflow.serialization.serialized_objects import DagSerialization as Serialization
    except ImportError:
        from airflow.serialization.serialized_objects import SerializedDAG as Serialization
    return Serialization.from_dict(Serialization.to_dict(dag))


def _settings(task: Any) -> dict[str, Any]:
    return {key: value for key, value in vars(task).items() if key not in INTERNALS}


@pytest.mark.parametrize("defaults", list(DEFAULTS))
@pytest.mark.parametrize(
    ("operator", "common", "mapped", "value"),
    CASES,
    ids=[f"{c[0].__name__.removeprefix('CloudflareQueues')}-{c[2]}" for c in CASES],
)
def test_mapped_tasks_equal_plain_ones(
    operator: type[Any], common: dict[str, Any], mapped: str, value: Any, defaults: str
) -> None:
    dag_args = {k: v for k, v in DEFAULTS[defaults].items() if k == "default_args"}
    task_args = {k: v for k, v in DEFAULTS[defaults].items() if k != "default_args"}
    if "queue" in task_args and "cloudflare_queue" not in {*common, mapped} and operator._uses_cloudflare_queue:
        from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError

        with DAG("mapping_probe", schedule=None, start_date=datetime(2026, 1, 1)):  # refused alike in every form
            with pytest.raises(CloudflareQueuesConfigError):
                operator(task_id="plain", **common, **task_args, **{mapped: value})
            with pytest.raises(CloudflareQueuesConfigError):
                operator.partial(task_id="expanded", **common, **task_args).expand(**{mapped: [value]})
            with pytest.raises(CloudflareQueuesConfigError):
                operator.partial(task_id="kw", **common, **task_args).expand_kwargs([{mapped: value}])
        return
    with DAG("mapping_probe", schedule=None, start_date=datetime(2026, 1, 1), **dag_args) as dag:
        plain = operator(task_id="plain", **common, **task_args, **{mapped: value})
        expanded = operator.partial(task_id="expanded", **common, **task_args).expand(**{mapped: [value]})
        expanded_kwargs = operator.partial(task_id="expanded_kwargs", **common, **task_args).expand_kwargs(
            [{mapped: value}]
        )
    expected = {"no default_args": "default", "default_args with queue and retry_delay": "cfq-workers"}
    assert plain.queue == expected.get(defaults, "gpu")
    scheduled = _serialized(dag)
    for form in (expanded, expanded_kwargs):
        # the scheduler routes and retries the mapped task as it would the plain one
        assert (form.queue, form.retry_delay) == (plain.queue, plain.retry_delay)
        assert scheduled.get_task(form.task_id).queue == scheduled.get_task("plain").queue == plain.queue
        # and the task each map index runs is the plain task
        assert _settings(form.unmap({mapped: value})) == _settings(plain)


def test_the_three_mapping_defects_are_gone() -> None:
    """``default_args`` queue routed mapped drains to "default"; partial() without ``retry_delay`` gave
    messages the task's retry delay; partial() without ``queue`` drained a queue called "default"."""
    with DAG("defects", schedule=None, start_date=datetime(2026, 1, 1), default_args=WORKERS):
        plain = CloudflareQueuesPullAndAckOperator(task_id="plain", process=print)
        mapped = CloudflareQueuesPullAndAckOperator.partial(task_id="mapped", process=print).expand(max_messages=[10])
        ack = CloudflareQueuesAckOperator.partial(task_id="ack").expand(acks=[["lease"]])
    drain = mapped.unmap({"max_messages": 10})
    assert mapped.queue == drain.queue == plain.queue == "cfq-workers"  # 1. routed to the workers' queue
    assert drain.message_retry_delay is None and drain.retry_delay == timedelta(seconds=300)  # 2. backoff
    assert ack.unmap({"acks": ["lease"]}).message_retry_delay is None
    assert drain.cloudflare_queue is None  # 3. the connection's queue extra, not "default"
    assert plain.cloudflare_queue is None and plain.message_retry_delay is None


def test_a_queue_argument_meant_as_the_cloudflare_queue_is_refused_when_the_dag_is_parsed() -> None:
    """queue= without cloudflare_queue= is refused in every form, whatever the connection holds (it is not
    read); queue= beside cloudflare_queue=, and a queue from default_args, are Airflow's and untouched."""
    from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError

    refused = r"got queue=\[?'orders'\]? and no cloudflare_queue=.*executor queue.*cloudflare_queue=\[?'orders'"
    with DAG("refusals", schedule=None, start_date=datetime(2026, 1, 1), default_args=WORKERS):
        forms: dict[str, Any] = {  # each is refused
            "plain": lambda: CloudflareQueuesPushOperator(task_id="push", queue="orders", messages=[1]),
            "sensor": lambda: CloudflareQueuesBacklogSensor(task_id="wait", queue="orders", min_backlog=1),
            "partial": lambda: CloudflareQueuesPullAndAckOperator.partial(
                task_id="drain", queue="orders", process=print
            ).expand(max_messages=[1]),
            "expand": lambda: CloudflareQueuesPullOperator.partial(task_id="pull").expand(queue=["orders"]),
            "expand_kwargs": lambda: CloudflareQueuesPushOperator.partial(
                task_id="push2", queue="orders"
            ).expand_kwargs([{"messages": [1]}]),
        }
        for build in forms.values():
            with pytest.raises(CloudflareQueuesConfigError, match=refused):
                build()
        kept = [
            CloudflareQueuesPushOperator(task_id="a", queue="gpu", cloudflare_queue="orders", messages=[1]),
            CloudflareQueuesPushOperator.partial(task_id="b", queue="gpu", messages=[1]).expand(
                cloudflare_queue=["orders"]
            ),
            CloudflareQueuesPushOperator.partial(task_id="c", queue="gpu").expand_kwargs(
                [{"cloudflare_queue": "orders", "messages": [1]}]
            ),
        ]
        from_defaults = CloudflareQueuesPushOperator(task_id="d", messages=[1])
    assert [task.queue for task in kept] == ["gpu"] * 3
    assert (from_defaults.queue, from_defaults.cloudflare_queue) == ("cfq-workers", None)


FOREIGN = [
    (CloudflareQueuesPushOperator, {"message_content": "x"}, "Amazon SQS's name.: here, messages="),
    (CloudflareQueuesPushOperator, {"sqs_queue": "q", "messages": [1]}, "cloudflare_queue="),
    (CloudflareQueuesPullAndAckOperator, {"queue_url": "https://x", "process": print}, "not a URL"),
    (CloudflareQueuesPullAndAckOperator, {"max_number_of_messages": 10, "process": print}, "batch_size="),
    (CloudflareQueuesPullAndAckOperator, {"num_batches": 3, "process": print}, "max_batches="),
    (CloudflareQueuesPullOperator, {"wait_time_seconds": 20}, "no long polling"),
    (CloudflareQueuesPullOperator, {"delete_message_on_reception": True}, r"PullOperator\(ack=True\)"),
    (CloudflareQueuesPullAndAckOperator, {"subscription": "s", "process": print}, "no subscriptions"),
    (CloudflareQueuesPullAndAckOperator, {"topics": ["t"], "process": print}, r"expand\(cloudflare_queue"),
    (CloudflareQueuesPullAndAckOperator, {"apply_function": print}, "process="),
    (CloudflareQueuesBacklogSensor, {"aws_conn_id": "aws"}, "cloudflare_queues_conn_id="),
    (CloudflareQueuesAckOperator, {"message_attributes": {}, "acks": []}, "no attributes"),
]


@pytest.mark.parametrize(("operator", "arguments", "guidance"), FOREIGN, ids=[next(iter(c[1])) for c in FOREIGN])
def test_other_providers_names_get_this_providers_name(
    operator: type[Any], arguments: dict[str, Any], guidance: str
) -> None:
    """Plain, .partial() and .expand() alike: the message names the argument, whose it is, and ours."""
    name = next(iter(arguments))
    with DAG("moved", schedule=None, start_date=datetime(2026, 1, 1)):
        attempts = [
            lambda: operator(task_id="plain", cloudflare_queue="orders", **arguments),
            lambda: operator.partial(task_id="partial", **arguments).expand(cloudflare_queue=["orders"]),
            lambda: operator.partial(task_id="expand", cloudflare_queue="orders").expand(**{name: [arguments[name]]}),
        ]
        for attempt in attempts:
            with pytest.raises(TypeError, match=f"(?s){name}=.*{guidance}.*docs/migrating.md"):
                attempt()
