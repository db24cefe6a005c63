"""
End to end with real Airflow components: api-server, scheduler (LocalExecutor), triggerer and
DAG processor on a temporary AIRFLOW_HOME, and the emulator. dag.test() runs neither a triggerer nor
asset watchers; this test does:

* messages pushed to a queue start the event-driven example DAG through an asset watcher
  (``MessageQueueTrigger(scheme="cloudflare+queues")`` on the triggerer), which processes and acks them;
* the deferrable backlog sensor of the fan-out example is deferred, then resumed by the triggerer
  when the backlog builds up;
* scale-out: the fan-out example's four mapped PullAndAck tasks drain 10,000 messages in parallel
  worker processes (LocalExecutor, parallelism 8).

Every process started here is stopped at the end, also on failure.
"""

from __future__ import annotations

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

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..conftest import TEST_TOKEN
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
        for name, args in COMPONENTS.items():
            log = (self.home / f"{name}.log").open("wb")
            self.processes[name] = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

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

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for name, process in self.processes.items():
                assert process.poll() is None, f"{name} exited with {process.returncode}\n{self.logs()}"
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def run_states(self, dag_id: str) -> list[str]:
        return [str(state) for (state,) in self.query("SELECT state FROM dag_run WHERE dag_id = ?", dag_id)]

    def task_state(self, dag_id: str, task_id: str) -> str | None:
        rows = self.query("SELECT state FROM task_instance WHERE dag_id = ? AND task_id = ?", dag_id, task_id)
        return str(rows[0][0]) if rows else None


@pytest.fixture
def airflow(tmp_path: Path, emulator_process: CloudflareQueuesEmulator) -> Iterator[Airflow]:
    components = Airflow(tmp_path, emulator_process)
    try:
        components.start()
        yield components
    finally:
        components.stop()


@pytest.fixture
def emulator_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudflareQueuesEmulator]:
    with CloudflareQueuesEmulator(token=TEST_TOKEN, record_events=True) as emulator:
        for queue in ("example-inbox", "example-events"):
            emulator.create_queue(queue)
        for name, value in emulator.airflow_connection_env().items():
            monkeypatch.setenv(name, value)
        yield emulator


def test_event_driven_dag_and_deferred_sensor(airflow: Airflow, emulator_process: CloudflareQueuesEmulator) -> None:
    emulator = emulator_process
    hook = CloudflareQueuesHook()

    # the asset watcher's trigger runs on the triggerer: it polls the queue
    airflow.wait_for("the triggerer to poll example-inbox", lambda: emulator.app.requests["pull"] > 0)
    hook.push_messages([{"order": n} for n in range(5)], queue="example-inbox")
    airflow.wait_for(
        "the event-driven DAG run to succeed", lambda: "success" in airflow.run_states("cfqueues_example_event_driven")
    )
    assert airflow.run_states("cfqueues_example_event_driven") == ["success"]  # one event, one run
    inbox = emulator.queue("example-inbox").queue_id
    acked = [e for e in emulator.events if e.kind == "ack" and e.queue_id == inbox]
    assert len(acked) == 5 and emulator.metrics("example-inbox")["backlog_count"] == 0

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

    # scale-out: four mapped drains in separate worker processes empty a queue of 10,000 messages
    emulator.events.clear()
    hook.push_messages([{"event": n} for n in range(10_000)], queue="example-events")
    started = time.monotonic()
    airflow.cli(
        "dags",
        "trigger",
        "cfqueues_example_backlog_fanout",
        "--conf",
        json.dumps({"min_backlog": 10_000, "db_path": str(db_path)}),
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
    assert len(delivered) == 10_000 and duplicates <= expired_or_lost
    assert emulator.metrics("example-events")["backlog_count"] == 0
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 10_040
    drained = airflow.query(
        "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND task_id = 'drain' AND run_id = ("
        "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
        "cfqueues_example_backlog_fanout",
        "cfqueues_example_backlog_fanout",
    )
    assert sorted(drained) == [(i, "success") for i in range(4)]
    print(f"\nscale-out: 10,000 messages drained by 4 mapped tasks in {took:.0f} s, {len(duplicates)} duplicate(s)")

    # the token appears nowhere: component and task logs, XCom, rendered fields, trigger rows
    assert leaks_in_files(airflow.home, TEST_TOKEN) == []
    assert leaks_in_db(airflow.home / "airflow.db", TEST_TOKEN) == []
