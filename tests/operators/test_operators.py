"""The operators in real DAG runs (dag.test()) against the emulator."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_cfqueues.consume.poison import PoisonEnvelope
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import TEST_TOKEN, point_connection, task_states, xcom

pytestmark = pytest.mark.slow


@pytest.fixture
def emulator(emulator_connection: Callable[[CloudflareQueuesEmulator], None]) -> Iterator[CloudflareQueuesEmulator]:
    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emu:
        emulator_connection(emu)
        yield emu


def test_push_operator_forms(emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.dags.cfqueues_test_dags import push_dag

    emulator.create_queue("pushed")
    point_connection(monkeypatch, emulator, "cfq_other")
    run = push_dag.test(run_conf={"queue": "pushed", "conn_id": "cfq_other", "delay": "0"})
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    assert xcom(run, "push_objects")["messages"] == 4
    assert xcom(run, "push_dict_with_body_key")["messages"] == 1
    templated = xcom(run, "push_templated")
    assert (templated["queue_id"], templated["messages"], templated["requests"]) == (
        emulator.queue("pushed").queue_id,
        1,
        1,
    )
    assert 1 <= templated["backlog_count"] <= 12  # the tasks run in no fixed order
    assert [xcom(run, "push_mapped", i)["messages"] for i in range(3)] == [2, 1, 3]
    bodies = []
    for message in emulator.messages("pushed"):
        raw = message.body if message.content_type == "text" else json.loads(base64.b64decode(message.body))
        bodies.append((raw, message.state))
    expected = [
        ({"n": 0}, "available"),
        ({"n": 1}, "available"),
        ({"n": 2}, "available"),
        ("delayed", "delayed"),
        ({"body": "x", "content_type": "text"}, "available"),
        (f"run {run.run_id}", "available"),
        ({"m": 1}, "available"),
        ({"m": 2}, "available"),
        ({"m": 3}, "available"),
        ("a", "available"),
        ("b", "available"),
        ("c", "available"),
    ]
    assert sorted(map(json.dumps, bodies)) == sorted(map(json.dumps, expected))


def test_mapped_tasks_in_a_real_run_keep_airflow_queue_and_retry_delay(
    airflow_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three mapping defects, through dag.test(): default_args' executor queue reaches the mapped task
    instances, the message retry delay is the provider's backoff (not the task retry_delay of 300 s), and
    without cloudflare_queue the drains use the connection's queue extra."""
    from tests.dags.cfqueues_test_dags import mapped_defaults_dag

    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=ManualClock()) as local:
        point_connection(monkeypatch, local, queue="defaults-q")
        local.create_queue("defaults-q")
        CloudflareQueuesHook().push_messages([{"n": n, "fail": n == 3} for n in range(10)])
        run = mapped_defaults_dag.test()
        assert task_states(run) == {"drain[0]": "success", "drain[1]": "success"}
        assert {ti.queue for ti in run.get_task_instances()} == {"cfq-workers"}
        assert sum(xcom(run, "drain", i)["acked"] for i in (0, 1)) == 9
        (failed,) = local.messages("defaults-q")
        assert (failed.state, failed.attempts, failed.visible_at - local.clock.now()) == ("delayed", 1, 30)


def test_mapping_over_queues(emulator: CloudflareQueuesEmulator) -> None:
    from tests.dags.cfqueues_test_dags import map_queues_dag

    for name in ("map-a", "map-b"):
        emulator.create_queue(name)
    run = map_queues_dag.test()
    states = task_states(run)
    assert set(states.values()) == {"success"} and len(states) == 7, states
    assert [xcom(run, "drain", i)["acked"] for i in (0, 1)] == [3, 3]
    results = [xcom(run, "drain", 0), xcom(run, "nothing")]
    assert results[0].keys() == results[1].keys()  # one shape, whatever happened
    assert results[1]["stop_reason"] == "max_messages is 0"
    assert {ti.queue for ti in run.get_task_instances()} == {"default"}  # executor queue untouched
    drain = map_queues_dag.get_task("drain")
    assert drain.expand_input.value == {"cloudflare_queue": ["map-a", "map-b"]}


def test_each_task_execution_uses_one_hook_and_closes_it(emulator: CloudflareQueuesEmulator) -> None:
    from tests.dags.cfqueues_test_dags import lifecycle_dag

    emulator.create_queue("life")
    run = lifecycle_dag.test()
    assert task_states(run) == {"push": "success", "pokes": "skipped", "drain": "success"}
    assert emulator.app.requests["metrics"] >= 5  # the sensor poked several times ...
    # ... over one connection: push 1, sensor 1, drain 1 + one per worker (2)
    assert emulator.connections_accepted <= 5, emulator.connections_accepted
    deadline = time.monotonic() + 10
    while emulator.connections_open and time.monotonic() < deadline:  # the server sees the closes
        time.sleep(0.05)
    assert emulator.connections_open == 0


def test_default_args_keep_their_airflow_meaning(airflow_db: str) -> None:
    from datetime import datetime, timedelta

    try:
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2.11
        from airflow import DAG

    from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPullAndAckOperator

    with DAG(
        "defaults_probe",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args={"queue": "celery-high", "retry_delay": timedelta(minutes=5)},
    ):
        plain = CloudflareQueuesPullAndAckOperator(task_id="plain", process=print)
        explicit = CloudflareQueuesPullAndAckOperator(
            task_id="explicit", cloudflare_queue="orders", process=print, message_retry_delay=10
        )
    assert (plain.queue, plain.cloudflare_queue, plain.message_retry_delay) == ("celery-high", None, None)
    assert plain.retry_delay == timedelta(minutes=5)
    assert (explicit.queue, explicit.cloudflare_queue, explicit.message_retry_delay) == ("celery-high", "orders", 10)


def test_pull_and_ack_with_failures_backoff_and_poison(
    emulator_connection: Callable[[CloudflareQueuesEmulator], None],
) -> None:
    from tests.dags.cfqueues_test_dags import drain_dag

    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=ManualClock()) as emulator:
        emulator_connection(emulator)
        emulator.create_queue("work")
        emulator.create_queue("work-poison", http_pull=False)
        bodies = [{"n": n, "fail": n % 25 == 0} for n in range(200)]
        bad = [b for b in bodies if b["fail"]]
        CloudflareQueuesHook(queue="work").push_messages(bodies)
        first = drain_dag.test(run_conf={"queue": "work"})
        assert task_states(first) == {"drain": "success"}
        summary = xcom(first, "drain")
        # one attempt per run: each bad message failed once and waits out the backoff (30 s after attempt 1)
        assert (summary["pulled"], summary["acked"]) == (len(bodies), len(bodies) - len(bad))
        assert summary["failed"] == summary["retried"] == len(bad) == len(summary["failed_ids"])
        assert (summary["poisoned"], summary["released"], summary["deleted"]) == (0, 0, 0)
        # the last worker to stop says why; the others' leases may still have been out at that moment
        assert summary["stop_reason"].startswith(("the queue is empty", "nothing to pull"))
        assert summary["backlog_after"] == len(bad)
        left = emulator.messages("work")
        assert {(m.state, m.attempts, m.visible_at - emulator.clock.now()) for m in left} == {("delayed", 1, 30)}

        emulator.clock.advance(30)
        second = drain_dag.test(run_conf={"queue": "work"})
        summary = xcom(second, "drain")
        # max_attempts=2: the second failure routes them to the poison queue, and acks them: handled, not failed
        assert (summary["pulled"], summary["failed"], summary["poisoned"], summary["acked"]) == (8, 0, 8, 8)
        assert summary["retried"] == 0 and summary["backlog_after"] == 0
        copies = [PoisonEnvelope.read(json.loads(base64.b64decode(m.body))) for m in emulator.messages("work-poison")]
        poison = sorted(copy.body["n"] for copy in copies)
        assert {copy.source["attempts"] for copy in copies} == {2}
        assert poison == [b["n"] for b in bad]


def test_pull_and_ack_fails_the_task_and_retries_failures(emulator: CloudflareQueuesEmulator) -> None:
    from tests.dags.cfqueues_test_dags import strict_dag

    emulator.create_queue("strict")
    CloudflareQueuesHook(queue="strict").push_messages([{"n": n, "fail": n == 7} for n in range(20)])
    run = strict_dag.test(run_conf={"queue": "strict"})
    assert task_states(run) == {"drain": "failed"}
    left = emulator.messages("strict")
    assert [(m.state, m.attempts) for m in left] == [("delayed", 1)]  # retried with retry_delay=3600
    assert left[0].visible_at - emulator.clock.now() == pytest.approx(3600, abs=30)


def test_pull_with_ack_returns_the_messages_and_acks_them(emulator: CloudflareQueuesEmulator) -> None:
    from tests.dags.cfqueues_test_dags import xcom_dag

    emulator.create_queue("take")
    emulator.create_queue("take-big")
    hook = CloudflareQueuesHook()
    hook.push_messages([{"n": n} for n in range(30)] + ["text body"], queue="take")
    hook.push_messages(["x" * 500 for _ in range(10)], queue="take-big")
    run = xcom_dag.test(run_conf={"queue": "take", "max": 25})
    assert task_states(run) == {"take": "success", "take_too_much": "failed"}
    taken = xcom(run, "take")
    assert [m["body"] for m in taken] == [{"n": n} for n in range(25)]
    assert "lease_id" not in taken[0] and taken[0]["attempts"] == 1
    assert emulator.metrics("take")["backlog_count"] == 6
    # past max_xcom_bytes: an error, and every lease released at once: nothing lost
    assert [m.state for m in emulator.messages("take-big")] == ["available"] * 10


def test_pull_operator_warns_when_leases_would_expire_before_the_work() -> None:
    import subprocess
    import sys

    probe = (
        "from datetime import timedelta\n"
        "from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPullOperator\n"
        "CloudflareQueuesPullOperator(task_id='ok', cloudflare_queue='q', visibility_timeout=timedelta(minutes=30),\n"
        "                             expected_processing_time=timedelta(minutes=10))\n"
        "print('--- short ---', flush=True)\n"
        "CloudflareQueuesPullOperator(task_id='short', cloudflare_queue='q', visibility_timeout=timedelta(minutes=5),\n"
        "                             expected_processing_time=timedelta(minutes=10))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=True,
    )
    before, _, after = result.stdout.partition("--- short ---")  # one stream, in order
    warning = "will expire before the downstream tasks ack them"
    assert warning not in before
    assert warning in after


def test_a_paused_queue_skips_or_fails_or_succeeds_as_told(emulator: CloudflareQueuesEmulator) -> None:
    from tests.dags.cfqueues_test_dags import paused_dag

    emulator.create_queue("paused")
    CloudflareQueuesHook(queue="paused").push_messages([{"n": n} for n in range(5)])
    emulator.pause_delivery("paused")
    run = paused_dag.test(run_conf={"queue": "paused"})
    assert task_states(run) == {
        "drain_skips": "skipped",
        "drain_succeeds": "success",
        "drain_fails": "failed",
        "pull_skips": "skipped",
    }
    summary = xcom(run, "drain_succeeds")
    assert (summary["pulled"], summary["acked"], summary["stop_reason"]) == (0, 0, "delivery of the queue is paused")
    assert {(m.state, m.attempts) for m in emulator.messages("paused")} == {("available", 0)}  # nothing pulled


def test_peek_select_and_purge_the_known_poison(emulator: CloudflareQueuesEmulator) -> None:
    """The recipe of docs/operators.md: nothing is leased, no attempt spent, only the selected ones deleted."""
    from tests.dags.cfqueues_test_dags import peek_purge_dag

    emulator.create_queue("peek-q")
    CloudflareQueuesHook(queue="peek-q").push_messages([{"n": n, "fail": n % 4 == 0} for n in range(12)])
    run = peek_purge_dag.test(run_conf={"queue": "peek-q"})
    assert task_states(run) == {"peek": "success", "select_poison": "success", "purge": "success"}
    assert len(xcom(run, "peek")) == 12 and all("ref" in m and m["attempts"] == 0 for m in xcom(run, "peek"))
    assert xcom(run, "purge") == {"purged": 3, "not_purged": {}, "duplicates": []}
    left = emulator.messages("peek-q")
    assert len(left) == 9 and {(m.state, m.attempts) for m in left} == {("available", 0)}


@pytest.mark.slow
def test_purge_refs_from_templates_are_read_back_or_refused(emulator: CloudflareQueuesEmulator) -> None:
    from tests.dags.cfqueues_test_dags import purge_templates_dag

    emulator.create_queue("tpl-q")
    CloudflareQueuesHook(queue="tpl-q").push_messages([{"n": n} for n in range(4)])
    run = purge_templates_dag.test(run_conf={"queue": "tpl-q"})
    states = task_states(run)
    assert states["purge_rendered_list"] == "success" and states["purge_rendered_none"] == "failed"
    assert xcom(run, "purge_rendered_list") == {"purged": 2, "not_purged": {}, "duplicates": []}
    assert emulator.app.requests["purge_messages"] == 1  # the None one sent nothing
    assert sorted(m.attempts for m in emulator.messages("tpl-q")) == [0, 0]


def test_the_testing_docs_recipe_retries_at_once_under_dag_test(airflow_db: str) -> None:
    """docs/testing.md, "Task retry delays": its snippet, as written, on a DAG whose retries wait 10 minutes."""
    from pathlib import Path

    from tests.dags.cfqueues_test_dags import slow_retries_dag

    docs = (Path(__file__).parents[2] / "docs" / "testing.md").read_text()
    recipe = next(block for block in docs.split("```python\n") if "def without_retry_waits" in block)
    namespace: dict[str, Any] = {"dag": slow_retries_dag}
    exec(recipe.split("```", 1)[0], namespace)  # noqa: S102 - our own documentation
    run = namespace["run"]
    assert task_states(run) == {"flaky": "success"} and xcom(run, "flaky") == 2  # the retry ran
    assert (run.end_date - run.start_date).total_seconds() < 300  # and did not wait its 10 minutes
