"""
End to end with real Airflow components: api-server, scheduler (LocalExecutor), triggerer and
DAG processor on a temporary AIRFLOW_HOME, and the emulator. dag.test() runs neither a triggerer nor
asset watchers; this test does:

* messages pushed to a queue start the event-driven example DAG through an asset watcher
  (``MessageQueueTrigger(scheme="cloudflare+queues")`` on the triggerer), which acks each message once
  its asset event is stored (``ack="persisted"``, Airflow 3.3's shared streams);
* two DAGs watch one queue with different filters (the routing example): one pull loop for both, each
  message reaches the DAG that wants it and is acked once, the unwanted ones go to a poison queue;
  a triggerer killed with SIGKILL while events are in flight loses nothing;
* the deferrable backlog sensor of the fan-out example is deferred, then resumed by the triggerer
  when the backlog builds up;
* scale-out: the fan-out example's four mapped PullAndAck tasks drain 2,000 messages in parallel
  worker processes (LocalExecutor, parallelism 8);
* files landing in R2: 50 objects under two prefixes, a notification rule on one; only that prefix's
  notifications reach the queue and start the R2 example's event-driven DAG, each object is loaded
  once (a duplicate notification changes nothing), one deleted before its load is reported.

The two tests share one set of components (module-scoped fixtures), in the order written. Every
process started here is stopped at the end, also on failure.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cfqueues.consume.poison import PoisonEnvelope
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.emulator.r2 import RuleError
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import TEST_TOKEN, point_connection
from ..secrets_check import leaks_in_db, leaks_in_files

pytestmark = [pytest.mark.slow, pytest.mark.airflow3]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler"],
    "triggerer": ["triggerer"],
    "dag-processor": ["dag-processor"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Airflow:
    """The Airflow components, their environment, and read access to their metadata DB."""

    def __init__(self, home: Path, emulator: CloudflareQueuesEmulator) -> None:
        self.home = home
        api_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES="airflow.*\nairflow_provider_cfqueues.*",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(api_port),
            AIRFLOW__API_AUTH__JWT_SECRET="e2e-jwt-secret-0123456789abcdef",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            # a killed triggerer's watchers move to the next one within 15 s, not 30
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="1",
            AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD="15",
            # the R2 example: a local directory stands in for the buckets, and its SQLite file
            CFQ_EXAMPLE_OBJECT_DIR=str(home / "r2"),
            CFQ_EXAMPLE_R2_DB=str(home / "r2.sqlite"),
            **emulator.airflow_connection_env(),
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout

    def start(self) -> None:
        self.cli("db", "migrate")
        for name in COMPONENTS:
            self.start_component(name)

    def start_component(self, name: str, command: list[str] | None = None) -> None:
        """Start ``airflow <command>`` (default: the component's own) as ``name``, logging to ``<name>.log``."""
        log = (self.home / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [str(BIN / "airflow"), *(command or COMPONENTS[name])],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str) -> None:
        """SIGKILL a component and everything it started (the triggerer's runner subprocess too)."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def terminate(self, name: str) -> None:
        """Stop a component as a deployment does (SIGTERM), and wait for it."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            for log in sorted(self.home.glob("*.log"))
        )

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        try:
            with sqlite3.connect(f"file:{self.home}/airflow.db?mode=ro", uri=True, timeout=10) as db:
                return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # locked or not migrated yet: no rows for now
            return []

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 240, every: float = 1) -> None:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if condition():
                print(f"waited {time.monotonic() - started:.1f} s for {what}")
                return
            for name, process in self.processes.items():
                assert process.poll() is None, f"{name} exited with {process.returncode}\n{self.logs()}"
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def run_states(self, dag_id: str) -> list[str]:
        return [str(state) for (state,) in self.query("SELECT state FROM dag_run WHERE dag_id = ?", dag_id)]

    def returned(self, dag_id: str, task_id: str) -> list[object]:
        """The return values (XCom) of every run's ``task_id`` of ``dag_id``."""
        rows = self.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value'", dag_id, task_id
        )
        return [json.loads(value) for (value,) in rows]

    def task_state(self, dag_id: str, task_id: str) -> str | None:
        rows = self.query("SELECT state FROM task_instance WHERE dag_id = ? AND task_id = ?", dag_id, task_id)
        return str(rows[0][0]) if rows else None


@contextlib.contextmanager
def connected_emulator(**queues: dict[str, Any]) -> Iterator[CloudflareQueuesEmulator]:
    """An emulator recording its journal, with these queues (name -> consumer settings), and this
    process's default connection pointed at it."""
    with (
        CloudflareQueuesEmulator(token=TEST_TOKEN, record_events=True) as emulator,
        pytest.MonkeyPatch.context() as patch,
    ):
        for queue, settings in queues.items():
            emulator.create_queue(queue, **settings)
        point_connection(patch, emulator)
        yield emulator


@pytest.fixture(scope="module")
def emulator_process() -> Iterator[CloudflareQueuesEmulator]:
    queues = ("example-inbox", "example-events", "example-shop", "example-shop-unrouted", "example-r2-uploads")
    with connected_emulator(**{queue: {} for queue in queues}) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, emulator_process: CloudflareQueuesEmulator) -> Iterator[Airflow]:
    components = Airflow(tmp_path_factory.mktemp("airflow-home"), emulator_process)
    try:
        components.start()
        yield components
    finally:
        components.stop()


def journal(emulator: CloudflareQueuesEmulator, queue: str, kind: str) -> Counter[str]:
    """How many times each message of ``queue`` appears in the emulator's ``kind`` entries."""
    queue_id = emulator.queue(queue).queue_id
    return Counter(m for e in emulator.events if e.kind == kind and e.queue_id == queue_id for m in e.message_ids)


def stored_messages(airflow: Airflow) -> set[str]:
    """Ids of the messages carried by the asset events in the metadata database."""
    rows = airflow.query("SELECT extra FROM asset_event")
    return {m["id"] for (extra,) in rows for m in json.loads(str(extra)).get("payload", {}).get("messages", [])}


def handled(airflow: Airflow, dag_id: str, task_id: str) -> Counter[str]:
    """How many times each message id was handled by the runs of ``dag_id`` (what its task returned)."""
    return Counter(m for ids in airflow.returned(dag_id, task_id) for m in ids)  # type: ignore[attr-defined]


def test_event_driven_dag_and_deferred_sensor(airflow: Airflow, emulator_process: CloudflareQueuesEmulator) -> None:
    emulator = emulator_process
    hook = CloudflareQueuesHook()

    # the asset watcher's trigger runs on the triggerer: it polls the queue
    inbox = emulator.queue("example-inbox").queue_id
    airflow.wait_for("the triggerer to poll example-inbox", lambda: emulator.app.queue_requests["pull", inbox] > 0)
    hook.push_messages([{"order": n} for n in range(5)], queue="example-inbox")
    airflow.wait_for(
        "the event-driven DAG to handle the 5 messages",
        lambda: (
            len(handled(airflow, "cfqueues_example_event_driven", "handle")) == 5
            and set(airflow.run_states("cfqueues_example_event_driven")) == {"success"}
        ),
    )
    assert len(airflow.run_states("cfqueues_example_event_driven")) == 1  # one event, one run
    # acked by the trigger once each asset event was stored; the DAG has no ack task
    assert set(journal(emulator, "example-inbox", "ack").values()) == {1}
    assert (
        len(journal(emulator, "example-inbox", "ack")) == 5 and emulator.metrics("example-inbox")["backlog_count"] == 0
    )
    assert set(handled(airflow, "cfqueues_example_event_driven", "handle").values()) == {1}

    # a deferrable sensor waits on the triggerer, and is resumed when the backlog builds up
    db_path = airflow.home / "events.sqlite"
    airflow.cli(
        "dags",
        "trigger",
        "cfqueues_example_backlog_fanout",
        "--conf",
        json.dumps({"min_backlog": 40, "db_path": str(db_path)}),
    )
    airflow.wait_for(
        "the backlog sensor to defer",
        lambda: airflow.task_state("cfqueues_example_backlog_fanout", "wait_for_backlog") == "deferred",
    )
    hook.push_messages([{"event": n} for n in range(40)], queue="example-events")
    airflow.wait_for(
        "the fan-out DAG run to succeed", lambda: "success" in airflow.run_states("cfqueues_example_backlog_fanout")
    )
    assert airflow.task_state("cfqueues_example_backlog_fanout", "wait_for_backlog") == "success"
    assert emulator.metrics("example-events")["backlog_count"] == 0
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 40

    # scale-out: four mapped drains in separate worker processes empty a queue of 2,000 messages
    emulator.events.clear()
    hook.push_messages([{"event": n} for n in range(2_000)], queue="example-events")
    started = time.monotonic()
    airflow.cli(
        "dags",
        "trigger",
        "cfqueues_example_backlog_fanout",
        "--conf",
        json.dumps({"min_backlog": 2_000, "db_path": str(db_path)}),
    )
    airflow.wait_for(
        "the scale-out run to succeed",
        lambda: airflow.run_states("cfqueues_example_backlog_fanout").count("success") == 2,
        timeout=300,
    )
    took = time.monotonic() - started
    events = emulator.queue("example-events").queue_id
    delivered = Counter(
        m for e in emulator.events if e.kind == "deliver" and e.queue_id == events for m in e.message_ids
    )
    expired_or_lost = {
        m
        for e in emulator.events
        if e.queue_id == events and e.kind in ("lease_expired", "lost_answer")
        for m in e.message_ids
    }
    duplicates = {m for m, n in delivered.items() if n > 1}
    assert len(delivered) == 2_000 and duplicates <= expired_or_lost
    assert emulator.metrics("example-events")["backlog_count"] == 0
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2_040
    drained = airflow.query(
        "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND task_id = 'drain' AND run_id = ("
        "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
        "cfqueues_example_backlog_fanout",
        "cfqueues_example_backlog_fanout",
    )
    assert sorted(drained) == [(i, "success") for i in range(4)]
    print(f"\nscale-out: 2,000 messages drained by 4 mapped tasks in {took:.0f} s, {len(duplicates)} duplicate(s)")


def test_two_dags_share_one_queue_and_a_killed_triggerer_loses_nothing(
    airflow: Airflow, emulator_process: CloudflareQueuesEmulator
) -> None:
    emulator = emulator_process
    shop = emulator.queue("example-shop").queue_id
    kinds = ["order", "order", "refund", "order", "refund"] * 98 + ["mystery"] * 10  # 500 messages
    airflow.wait_for("the triggerer to poll example-shop", lambda: emulator.app.queue_requests["pull", shop] > 0)
    pulls_before = emulator.app.queue_requests["pull", shop]
    started = time.monotonic()
    # the burst lands between two pulls: Airflow 3.3 starts a run for the first of several events
    # stored together and leaves the others for the next event (apache/airflow#56050), so the test
    # makes the burst one event per DAG, as max_messages_per_event=500 does for a burst in one place
    pushed = emulator.arrive_together("example-shop", [{"kind": kind, "n": n} for n, kind in enumerate(kinds)])
    wanted = {kind: {m for m, k in zip(pushed, kinds, strict=True) if k == kind} for kind in ("order", "refund")}

    def routed() -> tuple[Counter[str], Counter[str]]:
        return handled(airflow, "cfqueues_example_orders", "handle_orders"), handled(
            airflow, "cfqueues_example_refunds", "handle_refunds"
        )

    airflow.wait_for(
        "both DAGs to handle their messages",
        lambda: (
            [set(c) for c in routed()] == [wanted["order"], wanted["refund"]]
            and emulator.metrics("example-shop")["backlog_count"] == 0
        ),
        timeout=300,
    )
    took = time.monotonic() - started
    orders, refunds = routed()
    assert set(orders.values()) == set(refunds.values()) == {1}  # each message reached its DAG once
    assert set(journal(emulator, "example-shop", "deliver").values()) == {1}  # pulled once: one loop for both
    acks = journal(emulator, "example-shop", "ack")
    assert len(acks) == 500 and set(acks.values()) == {1}  # acked once each, the mysteries after routing
    unrouted = [
        PoisonEnvelope.read(json.loads(base64.b64decode(m.body))) for m in emulator.messages("example-shop-unrouted")
    ]
    assert sorted(b.body["kind"] for b in unrouted) == ["mystery"] * 10  # two competing loops would poison half
    assert all(b.source["queue"] == "example-shop" and "pid" in b.routed_by["triggerer"] for b in unrouted)
    pulls = emulator.app.queue_requests["pull", shop] - pulls_before
    print(f"\nrouting: 500 messages to 2 DAGs through one pull loop in {took:.0f} s, {pulls} pulls")

    # a triggerer killed while events are in flight: acks fail (nothing applied) until it is dead
    emulator.app.faults.set("ack", error=1.0)
    burst = [{"kind": "order" if n % 2 else "refund", "n": 1000 + n} for n in range(100)]
    in_flight = emulator.arrive_together("example-shop", burst)
    airflow.wait_for(
        "the triggerer to pull the burst",
        lambda: all(m in journal(emulator, "example-shop", "deliver") for m in in_flight),
        every=0.02,
    )
    airflow.kill("triggerer")  # at once: its events may be fired, stored, or neither
    stored_before = stored_messages(airflow) & set(in_flight)
    emulator.app.faults.clear()
    assert not any(m in journal(emulator, "example-shop", "ack") for m in in_flight)  # nothing was acked
    airflow.start_component("triggerer")
    emulator.clock.advance(601)  # the example's 600 s leases run out: the burst comes back
    airflow.wait_for(
        "the burst to reach its DAGs after the restart",
        lambda: (
            emulator.metrics("example-shop")["backlog_count"] == 0
            and set(in_flight) <= set(routed()[0]) | set(routed()[1])
        ),
        timeout=300,
    )
    orders, refunds = routed()
    acks = journal(emulator, "example-shop", "ack")
    assert all(acks[m] == 1 for m in in_flight)  # acked once, by the new triggerer
    assert all(journal(emulator, "example-shop", "deliver")[m] == 2 for m in in_flight)  # lease expiry, then again
    for n, message in enumerate(in_flight):
        assert (message in orders) == bool(n % 2) and (message in refunds) == (not n % 2)  # its own DAG
    duplicates = {m for m in in_flight if orders[m] + refunds[m] > 1}
    assert duplicates <= stored_before  # handled twice only when its first event was stored before the kill
    assert len(emulator.messages("example-shop-unrouted")) == 10  # nothing misrouted by the restart
    print(
        f"triggerer killed mid-burst: 100 messages redelivered, none lost; {len(stored_before)} had their "
        f"asset event stored before the kill, {len(duplicates)} handled twice"
    )

    # files landing in R2 start the R2 example's event-driven DAG (its watcher: the r2 shorthand)
    store, bucket = airflow.home / "r2", "example-uploads"
    emulator.add_r2_notification_rule(bucket, "example-r2-uploads", prefix="incoming/", suffix=".csv")
    with pytest.raises(RuleError, match="overlaps"):
        emulator.add_r2_notification_rule(bucket, "example-shop-unrouted", prefix="incoming/2026/")
    uploads = emulator.queue("example-r2-uploads").queue_id
    airflow.wait_for(
        "the triggerer to poll example-r2-uploads", lambda: emulator.app.queue_requests["pull", uploads] > 0
    )
    objects = []
    for n in range(25):
        for prefix in ("incoming/", "archive/"):
            key, content = f"{prefix}{n:02d}.csv", "".join(f"{n},{line}\n" for line in range(3)).encode()
            (store / bucket / key).parent.mkdir(parents=True, exist_ok=True)
            (store / bucket / key).write_bytes(content)
            objects.append({"key": key, "size": len(content), "etag": f"etag-{n}"})
    (store / bucket / "incoming/07.csv").unlink()  # deleted before it is loaded
    duplicate = next(o for o in objects if o["key"] == "incoming/03.csv")
    notified = emulator.r2_object_events(bucket, [*objects, duplicate])  # one burst
    assert len(notified) == 26  # the rule's prefix only: 25 objects and the duplicate

    def loaded() -> list[tuple[object, ...]]:
        if not (airflow.home / "r2.sqlite").exists():
            return []
        with sqlite3.connect(airflow.home / "r2.sqlite") as db:
            return db.execute("SELECT key, rows FROM loaded_objects ORDER BY key").fetchall()

    airflow.wait_for(
        "the R2 example to load the uploads",
        lambda: (
            len(loaded()) == 24
            and emulator.metrics("example-r2-uploads")["backlog_count"] == 0
            and set(airflow.run_states("cfqueues_example_r2_events")) == {"success"}
        ),
    )
    assert [key for key, _ in loaded()] == [f"incoming/{n:02d}.csv" for n in range(25) if n != 7]
    with sqlite3.connect(airflow.home / "r2.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM csv_rows").fetchone() == (72,)  # each object once
    outcomes = {
        key: what
        for result in airflow.returned("cfqueues_example_r2_events", "load_uploads")
        for key, what in result.items()
    }  # type: ignore[attr-defined]
    assert outcomes["incoming/07.csv"] == "deleted" and outcomes["incoming/03.csv"] in ("loaded", "duplicate")
    assert set(journal(emulator, "example-r2-uploads", "ack").values()) == {1}  # acked once stored

    # the token appears nowhere: component and task logs, XCom, rendered fields, trigger rows
    assert leaks_in_files(airflow.home, TEST_TOKEN) == []
    assert leaks_in_db(airflow.home / "airflow.db", TEST_TOKEN) == []
