"""
Task overhead: the wall time of a PullAndAck task on an empty queue (the cost of a no-op run: one
connection lookup, one pull, the summary to XCom), against a no-op ``@task`` in the same DAG runs,
both run by ``dag.test()``. Median of ``--runs`` runs after a warm-up run.

Run: ``.venv/bin/python benchmarks/task_overhead.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Row, table

HERE = Path(__file__).resolve().parent


def measure(runs: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="cfq-bench-home-"))
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(
            [
                {
                    "name": "bench",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(HERE / "dags")},
                }
            ]
        ),
    )
    try:
        subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
            check=True,
            capture_output=True,
            timeout=600,
        )
        from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator

        sys.path.insert(0, str(HERE / "dags"))
        from bench_overhead import dag  # type: ignore[import-not-found]

        durations: dict[str, list[float]] = {"noop": [], "drain_empty": []}
        with CloudflareQueuesEmulator() as emulator:
            emulator.create_queue("empty")
            os.environ.update(emulator.airflow_connection_env())
            for run_number in range(runs + 1):
                run = dag.test()
                if run_number == 0:
                    continue  # warm-up: the first dag.test() of a process imports and caches a lot
                for ti in run.get_task_instances():
                    durations[ti.task_id].append((ti.end_date - ti.start_date).total_seconds())
        return {task: statistics.median(values) for task, values in durations.items()}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def rows(runs: int = 5) -> list[Row]:
    # in a process of its own: Airflow binds its metadata DB when first imported, and this benchmark
    # needs its own migrated one
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--runs", str(runs)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout
    medians = json.loads(out.strip().splitlines()[-1])
    return [
        Row(
            "task overhead",
            "PullAndAck on an empty queue (dag.test)",
            f"{medians['drain_empty'] * 1000:.0f} ms",
            f"{medians['noop'] * 1000:.0f} ms (no-op @task)",
            medians["drain_empty"] / medians["noop"],
            f"median of {runs} runs",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.runs)))
    else:
        print(table(rows(args.runs)))
