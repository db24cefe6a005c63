"""The example DAGs, run through real Airflow (dag.test()) against the emulator."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, FaultRule
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import TEST_TOKEN, task_states, xcom

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def test_every_example_dag_imports(airflow_db: str) -> None:
    from airflow_provider_cfqueues._compat import AIRFLOW_3

    if AIRFLOW_3:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES), include_examples=False) if not AIRFLOW_3 else DagBag(str(EXAMPLES))
    expected = {
        "cfqueues_example_etl",
        "cfqueues_example_backlog_fanout",
        "cfqueues_example_split_pull_ack",
        "cfqueues_example_scratch_queue",
        "cfqueues_example_maintenance_window",
        "cfqueues_example_r2_csv",
    }
    if AIRFLOW_3:
        assert bag.import_errors == {}
        expected |= {
            "cfqueues_example_event_driven",
            "cfqueues_example_orders",
            "cfqueues_example_refunds",
            "cfqueues_example_r2_events",
        }
    else:  # event-driven scheduling (asset watchers) is Airflow 3 only
        assert sorted(Path(path).name for path in bag.import_errors) == [
            "example_cfqueues_event_driven.py",
            "example_cfqueues_routing.py",
        ]
    assert set(bag.dag_ids) == expected


@pytest.mark.slow
def test_etl_example(emulator_connection: Callable[[CloudflareQueuesEmulator], None], tmp_path: Path) -> None:
    from example_dags.example_cfqueues_etl import dag

    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emulator:
        emulator.create_queue("example-orders")
        emulator_connection(emulator)
        db_path = tmp_path / "orders.sqlite"
        run = dag.test(run_conf={"records": 321, "db_path": str(db_path)})
        assert set(task_states(run).values()) == {"success"}, task_states(run)
        assert xcom(run, "push") == {
            "queue_id": emulator.queue("example-orders").queue_id,
            "messages": 321,
            "requests": 4,
            "backlog_count": 321,
        }
        assert xcom(run, "wait_for_backlog")["backlog_count"] == 321
        summary = xcom(run, "load")
        assert (summary["pulled"], summary["acked"], summary["failed"]) == (321, 321, 0)
        assert xcom(run, "verify") == {"rows": 321, "acked": 321, "backlog_after": summary["backlog_after"]}
        assert emulator.metrics("example-orders")["backlog_count"] == 0
        with sqlite3.connect(db_path) as db:
            assert db.execute("SELECT SUM(qty) FROM orders").fetchone()[0] == sum(n % 5 + 1 for n in range(321))


@pytest.mark.slow
def test_backlog_fanout_example(
    emulator_connection: Callable[[CloudflareQueuesEmulator], None], tmp_path: Path
) -> None:
    from example_dags.example_cfqueues_backlog_fanout import dag

    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emulator:
        emulator.create_queue("example-events")
        emulator_connection(emulator)
        CloudflareQueuesHook(queue="example-events").push_messages([{"event": n} for n in range(240)])
        run = dag.test(run_conf={"min_backlog": 200, "db_path": str(tmp_path / "events.sqlite")})
        states = task_states(run)
        assert set(states.values()) == {"success"}, states
        assert [k for k in states if k.startswith("drain[")] == [f"drain[{i}]" for i in range(4)]
        assert xcom(run, "report") == {"drain_tasks": 4, "acked": 240, "backlog_after": 0}
        with sqlite3.connect(tmp_path / "events.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 240


@pytest.mark.slow
def test_split_pull_ack_example(emulator_connection: Callable[[CloudflareQueuesEmulator], None]) -> None:
    from example_dags.example_cfqueues_split_pull_ack import dag

    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emulator:
        emulator.create_queue("example-jobs")
        emulator_connection(emulator)
        jobs = [{"job": n, "flaky": n == 3} for n in range(6)]
        CloudflareQueuesHook(queue="example-jobs").push_messages(jobs)

        first = dag.test()
        states = task_states(first)
        assert states["pull"] == "success" and states["ack"] == "success"
        assert (
            sorted(k for k, v in states.items() if v == "failed") == ["handle[3]"]
            or len([v for k, v in states.items() if k.startswith("handle[") and v == "failed"]) == 1
        )
        assert xcom(first, "ack") == {"acked": 5, "retried": 1, "warnings": {}}
        remaining = emulator.messages("example-jobs")
        assert [(m.attempts, m.state) for m in remaining] == [(1, "available")]

        second = dag.test()
        assert set(task_states(second).values()) == {"success"}
        assert xcom(second, "ack") == {"acked": 1, "retried": 0, "warnings": {}}
        assert emulator.metrics("example-jobs")["backlog_count"] == 0


@pytest.mark.slow
def test_scratch_queue_example(emulator_connection: Callable[[CloudflareQueuesEmulator], None], tmp_path: Path) -> None:
    from example_dags.example_cfqueues_scratch_queue import dag

    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emulator:
        emulator_connection(emulator)
        consumers: list[dict[str, object]] = []

        def observe(method: str, target: str, headers: object, body: bytes, reply: object) -> None:
            if method == "POST" and target.endswith("/consumers"):
                consumers.append(json.loads(body))

        emulator.app.observers.append(observe)
        db_path = tmp_path / "thumbnails.sqlite"
        run = dag.test(run_conf={"images": 120, "db_path": str(db_path)})
        assert set(task_states(run).values()) == {"success"}, task_states(run)
        name = xcom(run, "queue_name")
        assert name.startswith("scratch-") and xcom(run, "create_queue") == xcom(run, "delete_queue")
        summary = xcom(run, "drain")
        assert (summary["pulled"], summary["acked"], summary["failed"]) == (120, 120, 0)
        assert consumers == [
            {
                "type": "http_pull",
                "settings": {"batch_size": 50, "max_retries": 3, "visibility_timeout_ms": 120_000},
            }
        ]
        assert xcom(run, "verify") == {"rendered": 120, "acked": 120}
        assert list(emulator.state.accounts[emulator.account_id]) == []  # the scratch queue is gone

        # a failed drain still deletes the queue, and the run fails
        broken = tmp_path / "missing-dir" / "thumbnails.sqlite"
        run = dag.test(run_conf={"images": 10, "db_path": str(broken)})
        states = task_states(run)
        assert (states["drain"], states["delete_queue"], states["verify"]) == ("failed", "success", "upstream_failed")
        assert str(run.state) == "failed"
        assert list(emulator.state.accounts[emulator.account_id]) == []


@pytest.mark.slow
def test_maintenance_window_example(
    emulator_connection: Callable[[CloudflareQueuesEmulator], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from example_dags.example_cfqueues_maintenance_window import dag

    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emulator:
        emulator.create_queue("example-orders")
        emulator_connection(emulator)
        pauses: list[bool] = []

        def observe(method: str, target: str, headers: object, body: bytes, reply: object) -> None:
            if method == "POST" and target.endswith("/messages/batch"):  # the backfill's pushes
                pauses.append(emulator.queue("example-orders").settings["delivery_paused"])

        emulator.app.observers.append(observe)
        run = dag.test(run_conf={"first_order": 5000, "orders": 150})
        assert set(task_states(run).values()) == {"success"}, task_states(run)
        assert pauses == [True, True]  # every backfill request went in while delivery was paused
        assert xcom(run, "report") == {"pushed": 150, "backlog_after": 150}
        assert emulator.queue("example-orders").settings["delivery_paused"] is False

        # the backfill fails (every push answers 500; one attempt): delivery is resumed all the same, and
        # the run fails
        emulator.faults.rules["push_batch"] = FaultRule(error=1.0)
        connection = emulator.airflow_connection()
        connection["extra"]["max_attempts"] = 1
        monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_QUEUES_DEFAULT", json.dumps(connection))
        run = dag.test(run_conf={"first_order": 0, "orders": 10})
        states = task_states(run)
        assert (states["backfill"], states["resume_delivery"]) == ("failed", "success")
        assert str(run.state) == "failed"
        assert emulator.queue("example-orders").settings["delivery_paused"] is False  # never left paused
