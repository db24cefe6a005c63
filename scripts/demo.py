"""
The README's demo (``make demo``): start the bundled Cloudflare Queues emulator, point an Airflow
connection at it, run four example DAGs with ``airflow dags test``, and print what happened.

Airflow's state (SQLite DB, logs, the demo's SQLite tables) goes to ``.airflow-demo/`` (git-ignored);
each DAG run's full output is kept there too.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".airflow-demo"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
QUEUES = ["example-orders", "example-events", "example-jobs"]


def airflow_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{HOME}/airflow.db",
        AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES="airflow.*\nairflow_provider_cfqueues.*",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
    )
    return env


def run_dag(env: dict[str, str], dag_id: str, conf: dict[str, Any] | None, label: str) -> str:
    """``airflow dags test``; its output goes to a log file. Returns the run id."""
    log_path = HOME / f"{label}.log"
    command = [AIRFLOW, "dags", "test", dag_id]
    if conf:
        command += ["-c", json.dumps(conf)]
    started = time.monotonic()
    with log_path.open("w") as log:
        result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=900, check=False)
    run_id, state = latest_run(dag_id)
    print(f"    airflow dags test {dag_id}: {state} in {time.monotonic() - started:.0f} s (full output: {log_path})")
    if state != "success" or result.returncode != 0:
        print("\n".join(log_path.read_text().splitlines()[-40:]))
        raise SystemExit(f"the example DAG {dag_id} failed")
    return run_id


def latest_run(dag_id: str) -> tuple[str, str]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
        return (run.run_id, str(run.state)) if run else ("", "not started")


def xcom(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.scalar(
            XComModel.get_many(
                run_id=run_id, key="return_value", dag_ids=dag_id, task_ids=task_id, map_indexes=map_index
            ).with_only_columns(XComModel.value)
        )
    if isinstance(value, str):  # JSON text, or (a plain string value) already decoded
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def main() -> None:
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir()
    env = airflow_env()
    os.environ.update(env)  # for the Airflow models this process reads XComs with
    print("Setting up Airflow in .airflow-demo/ (airflow db migrate) ...")
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)

    from airflow_provider_cfqueues.emulator import EmulatorProcess
    from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

    with EmulatorProcess(QUEUES) as emulator:
        connection = emulator.airflow_connection_env()
        env.update(connection)
        os.environ.update(connection)
        hook = CloudflareQueuesHook()
        print(f"Emulator at {emulator.base_url}; connection cloudflare_queues_default points at it")
        print(f"Queues: {', '.join(f'{name} ({emulator.queue_ids[name][:8]}...)' for name in QUEUES)}\n")

        # 1. ETL: extract -> push -> wait for the backlog -> drain into SQLite -> verify
        print("1. ETL (cfqueues_example_etl): 500 orders through example-orders into SQLite")
        db_path = HOME / "orders.sqlite"
        before = hook.get_metrics("example-orders").backlog_count
        run_id = run_dag(env, "cfqueues_example_etl", {"records": 500, "db_path": str(db_path)}, "etl")
        push, load = xcom("cfqueues_example_etl", run_id, "push"), xcom("cfqueues_example_etl", run_id, "load")
        with sqlite3.connect(db_path) as db:
            rows = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        print(
            f"    pushed {push['messages']} messages in {push['requests']} requests; "
            f"processed {load['pulled']} in {load['batches']} batches; acked {load['acked']}, "
            f"retried {load['retried']}; {rows} rows in SQLite"
        )
        print(f"    backlog before {before}, after {hook.get_metrics('example-orders').backlog_count}\n")

        # 2. Backlog-triggered fan-out: a deferrable sensor, then 4 mapped drains
        print("2. Backlog fan-out (cfqueues_example_backlog_fanout): 400 events, deferrable sensor, 4 drains")
        hook.push_messages(
            [{"event": n, "kind": "click" if n % 3 else "view"} for n in range(400)], queue="example-events"
        )
        before = hook.get_metrics("example-events").backlog_count
        conf = {"min_backlog": 400, "db_path": str(HOME / "events.sqlite")}
        run_id = run_dag(env, "cfqueues_example_backlog_fanout", conf, "fanout")
        shares = [xcom("cfqueues_example_backlog_fanout", run_id, "drain", i) for i in range(4)]
        report = xcom("cfqueues_example_backlog_fanout", run_id, "report")
        print(
            f"    sensor saw {xcom('cfqueues_example_backlog_fanout', run_id, 'wait_for_backlog')['backlog_count']} "
            f"messages; drains acked {' + '.join(str(s['acked']) for s in shares)} = {report['acked']}, "
            f"retried {sum(s['retried'] for s in shares)}"
        )
        print(f"    backlog before {before}, after {report['backlog_after']}\n")

        # 3. Split pull -> mapped processing -> ack, with one job failing on its first attempt
        print("3. Split pull/ack (cfqueues_example_split_pull_ack): 6 jobs, job 3 fails on its first attempt")
        hook.push_messages([{"job": n, "flaky": n == 3} for n in range(6)], queue="example-jobs")
        for attempt in (1, 2):
            before = hook.get_metrics("example-jobs").backlog_count
            run_id = run_dag(env, "cfqueues_example_split_pull_ack", None, f"split-{attempt}")
            pulled = xcom("cfqueues_example_split_pull_ack", run_id, "pull")
            ack = xcom("cfqueues_example_split_pull_ack", run_id, "ack")
            print(
                f"    run {attempt}: pulled {len(pulled)}, acked {ack['acked']}, retried {ack['retried']}; "
                f"backlog before {before}, after {hook.get_metrics('example-jobs').backlog_count}"
            )

        # 4. A scratch queue per run: create (with a pull consumer) -> push -> drain -> delete
        print("\n4. Scratch queue (cfqueues_example_scratch_queue): 200 images through a queue made for the run")
        before = {queue.queue_name for queue in hook.list_queues()}
        conf = {"images": 200, "db_path": str(HOME / "thumbnails.sqlite")}
        run_id = run_dag(env, "cfqueues_example_scratch_queue", conf, "scratch")
        name = xcom("cfqueues_example_scratch_queue", run_id, "queue_name")
        drain = xcom("cfqueues_example_scratch_queue", run_id, "drain")
        after = {queue.queue_name for queue in hook.list_queues()}
        print(
            f"    created {name}, pushed {xcom('cfqueues_example_scratch_queue', run_id, 'push')['messages']}, "
            f"acked {drain['acked']}; deleted it: {'yes' if name not in after else 'NO'} "
            f"(queues before {len(before)}, after {len(after)})"
        )
    print("\nDone: every message was processed and acknowledged; nothing is left in the queues.")


if __name__ == "__main__":
    main()
