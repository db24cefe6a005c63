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
from airflow_provider_cfqueues.operators.peek import CloudflareQueuesPeekOperator, CloudflareQueuesPurgeMessagesOperator
from airflow_provider_cfqueues.operators.pull_ack import CloudflareQueuesAckOperator, CloudflareQueuesPullOperator
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


def test_no_module_overrides_partial() -> None:
    import airflow_provider_cfqueues.operators.base as base

    for cls in (
        base.CloudflareQueuesBaseOperator,
        CloudflareQueuesPullAndAckOperator,
        CloudflareQueuesBacklogSensor,
        CloudflareQueuesCreateQueueOperator,
    ):
        assert not any(
            "partial" in vars(klass) for klass in cls.__mro__ if klass.__module__.startswith("airflow_provider")
        )


def test_a_queue_argument_meant_as_the_cloudflare_queue_is_pointed_out(
    emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After the rename, a leftover queue="orders" is the executor queue: the task says which queue it used."""
    from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError

    emulator.create_queue("from-extra")
    for name, value in emulator.airflow_connection_env(queue="from-extra").items():
        monkeypatch.setenv(name, value)
    leftover = CloudflareQueuesPushOperator(task_id="push", queue="orders", messages=[1])
    assert leftover.execute({})["messages"] == 1  # type: ignore[arg-type]
    said = capsys.readouterr().out + caplog.text
    assert "acts on Cloudflare queue 'from-extra'" in said and "write cloudflare_queue='orders'" in said
    for name, value in emulator.airflow_connection_env().items():  # no queue extra
        monkeypatch.setenv(name, value)
    with pytest.raises(CloudflareQueuesConfigError, match=r"queue= is Airflow's executor queue.*'orders' here"):
        CloudflareQueuesPushOperator(task_id="push", queue="orders", messages=[1]).execute({})  # type: ignore[arg-type]
