"""The administration operators in real DAG runs (dag.test()) against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesValidationError
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.operators.admin import (
    CloudflareQueuesCreateQueueOperator,
    CloudflareQueuesPurgeOperator,
    CloudflareQueuesUpdateConsumerOperator,
)
from airflow_provider_cfqueues.triggers.queues import CloudflareQueuesPurgeTrigger

from ..helpers import TEST_TOKEN, point_connection, task_states, trigger_events, xcom

READER_TOKEN = "cfq-reader-5d6e7f"


@pytest.fixture
def emulator(emulator_connection: Callable[[CloudflareQueuesEmulator], None]) -> Iterator[CloudflareQueuesEmulator]:
    with CloudflareQueuesEmulator(token=TEST_TOKEN, read_only_token=READER_TOKEN) as emu:
        emulator_connection(emu)
        yield emu


@pytest.mark.slow
def test_queue_lifecycle_from_a_dag(emulator: CloudflareQueuesEmulator) -> None:
    from tests.dags.cfqueues_admin_dags import lifecycle_dag

    emulator.state.purge_seconds = 0.5  # the deferred purge polls its status until it completes
    run = lifecycle_dag.test(run_conf={"queue": "nightly-42"})
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    queue_id = xcom(run, "create")
    assert xcom(run, "create_again") == queue_id == xcom(run, "create_or_update")  # idempotent
    assert xcom(run, "pause") == {"queue_id": queue_id, "delivery_paused": True}
    assert xcom(run, "resume") == {"queue_id": queue_id, "delivery_paused": False}
    consumer = xcom(run, "update_consumer")
    # templated strings became numbers; if_exists="update" changed max_retries only; the update
    # changed the visibility timeout and removed the dead-letter queue, keeping the rest
    assert consumer["settings"] == {
        "batch_size": 10,
        "max_retries": 5,
        "retry_delay": 30,
        "visibility_timeout_ms": 120_000,
    }
    assert consumer["dead_letter_queue"] is None and consumer["type"] == "http_pull"
    assert xcom(run, "purge") == 25  # the backlog the purge deleted
    assert xcom(run, "purge_again") == 0
    assert xcom(run, "delete") == queue_id
    assert xcom(run, "delete_again") is None  # if_missing="ignore": nothing to delete
    # the dead-letter queue Cloudflare made when the consumer named it outlives the queue itself
    assert [q.name for q in emulator.state.accounts[emulator.account_id].values()] == ["nightly-42-dlq"]


@pytest.mark.slow
def test_create_fails_with_the_fix(emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.dags.cfqueues_admin_dags import create_dag

    emulator.create_queue("taken")
    run = create_dag.test(run_conf={"queue": "taken"})
    assert task_states(run) == {"create": "failed"}  # if_exists="fail"
    point_connection(monkeypatch, emulator, "cfq_reader", token=READER_TOKEN)
    run = create_dag.test(run_conf={"queue": "fresh", "conn_id": "cfq_reader"})
    assert task_states(run) == {"create": "failed"}
    assert "fresh" not in [q.name for q in emulator.state.accounts[emulator.account_id].values()]


def test_read_only_token_error_names_the_permission(
    emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_connection(monkeypatch, emulator, "cfq_reader", token=READER_TOKEN)
    operator = CloudflareQueuesCreateQueueOperator(
        task_id="c", cloudflare_queue="fresh", cloudflare_queues_conn_id="cfq_reader"
    )
    with pytest.raises(Exception, match="Queues Edit permission") as caught:
        operator.execute({})  # type: ignore[arg-type]
    assert READER_TOKEN not in str(caught.value)


def test_purge_refuses_to_exist_without_confirm() -> None:
    with pytest.raises(CloudflareQueuesValidationError, match="cannot be undone: pass confirm=True"):
        CloudflareQueuesPurgeOperator(task_id="purge", cloudflare_queue="orders")
    with pytest.raises(CloudflareQueuesValidationError, match="confirm=True"):
        CloudflareQueuesPurgeOperator(task_id="purge", cloudflare_queue="orders", confirm="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 500}, "batch_size"),
        ({"message_retry_delay": 0.5}, "whole seconds"),
        ({"visibility_timeout": timedelta(hours=13)}, "visibility_timeout"),
        ({"dead_letter_queue": "a/b"}, "dead-letter queue name"),
    ],
)
def test_wrong_consumer_settings_fail_at_parse_time(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match=match):
        CloudflareQueuesCreateQueueOperator(task_id="c", cloudflare_queue="q", **kwargs)
    with pytest.raises(CloudflareQueuesValidationError, match=match):
        CloudflareQueuesUpdateConsumerOperator(task_id="u", cloudflare_queue="q", **kwargs)
    CloudflareQueuesUpdateConsumerOperator(
        task_id="u", cloudflare_queue="q", batch_size="{{ params.n }}"
    )  # checked at run


def test_if_exists_and_if_missing_are_checked() -> None:
    with pytest.raises(CloudflareQueuesValidationError, match="if_exists must be one of ignore, fail, update"):
        CloudflareQueuesCreateQueueOperator(task_id="c", cloudflare_queue="q", if_exists="replace")


def test_purge_trigger_times_out_and_reports_errors(emulator: CloudflareQueuesEmulator) -> None:
    emulator.state.purge_seconds = 3600
    emulator.create_queue("orders")
    emulator.state.purge(emulator.account_id, emulator.queue("orders").queue_id, {"delete_messages_permanently": True})
    trigger = CloudflareQueuesPurgeTrigger(cloudflare_queue="orders", poll_interval=0.05, timeout_at=0)
    (event,) = asyncio.run(trigger_events(trigger, 1))
    assert event["status"] == "timeout" and "still running" in event["message"]
    trigger = CloudflareQueuesPurgeTrigger(cloudflare_queue="missing", poll_interval=0.05)
    (event,) = asyncio.run(trigger_events(trigger, 1))
    assert event["status"] == "error" and "missing" in event["message"]
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cfqueues.triggers.queues.CloudflareQueuesPurgeTrigger"
    assert CloudflareQueuesPurgeTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.slow
def test_destructive_operators_act_only_on_the_queue_named(
    emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cloudflare_queue that renders empty, or none at all, on a connection whose default queue holds
    messages: every task fails, and the default queue is untouched."""
    from tests.dags.cfqueues_admin_dags import named_only_dag

    default = emulator.create_queue("prod-default")
    point_connection(monkeypatch, emulator, queue="prod-default")
    from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

    CloudflareQueuesHook().push_messages(list(range(5)))
    run = named_only_dag.test(run_conf={"q": "", "bs": "500"})
    assert task_states(run) == {
        "delete_empty": "failed",
        "purge_empty": "failed",
        "pause_unnamed": "failed",
        "consumer_unnamed": "failed",
        "create": "failed",  # batch_size 500: refused before the queue was created
    }
    queue = emulator.state.find_queue(emulator.account_id, "prod-default")
    assert queue.queue_id == default.id and emulator.metrics("prod-default")["backlog_count"] == 5
    assert not queue.settings["delivery_paused"] and queue.consumer is not None
    assert queue.consumer.settings["batch_size"] != 7
    assert "scratch-500" not in [q.name for q in emulator.state.accounts[emulator.account_id].values()]
    run = named_only_dag.test(run_conf={"q": "", "bs": "10"})  # the fixed setting: created, with its consumer
    assert task_states(run)["create"] == "success"
    created = emulator.state.find_queue(emulator.account_id, "scratch-10")
    assert created.consumer is not None and created.consumer.settings["batch_size"] == 10


def test_create_adds_the_pull_consumer_an_existing_queue_lacks(emulator: CloudflareQueuesEmulator) -> None:
    """An earlier try created the queue and failed before its consumer: the retry (if_exists='ignore') adds it."""
    queue = emulator.create_queue("half-made", http_pull=False)
    operator = CloudflareQueuesCreateQueueOperator(task_id="create", cloudflare_queue="half-made", batch_size=20)
    assert operator.execute({}) == queue.id  # type: ignore[arg-type]
    consumer = emulator.state.find_queue(emulator.account_id, "half-made").consumer
    assert consumer is not None and consumer.type == "http_pull" and consumer.settings["batch_size"] == 20
    operator.execute({})  # type: ignore[arg-type]  # and then leaves it as it is
