"""
A user's project tests its own DAG with our pytest plugin alone: the ini options give the session a
private Airflow home, ``cfqueues_airflow_db`` migrates it, and ``dag.test()`` runs against the
emulator. Run in a subprocess with none of this suite's Airflow environment, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DAG = """
from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_cfqueues.operators.queues import (
    CloudflareQueuesPullAndAckOperator,
    CloudflareQueuesPushOperator,
)


def handle(message):
    if message.body["n"] < 0:
        raise ValueError("negative")


with DAG("orders", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    push = CloudflareQueuesPushOperator(
        task_id="push", cloudflare_queue="orders", messages=[{"n": n} for n in range(20)]
    )
    load = CloudflareQueuesPullAndAckOperator(task_id="load", cloudflare_queue="orders", process=handle)
    push >> load
"""

TEST = """
import pytest


@pytest.mark.cfqueues(queues=["orders"])
def test_orders_dag(cfqueues_airflow_db, cfqueues_emulator, cfqueues_connection):
    from dags.orders import dag

    run = dag.test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    assert cfqueues_emulator.metrics("orders")["backlog_count"] == 0
"""

INI = """
[pytest]
cfqueues_airflow_home = true
cfqueues_dags_folder = dags
pythonpath = .
"""


def run_pytest(project: Path) -> subprocess.CompletedProcess[str]:
    """pytest on ``project`` in a fresh process with none of this suite's Airflow environment."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_a_users_dag_test_runs_with_the_plugin_alone(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "__init__.py").write_text("")
    (tmp_path / "dags" / "orders.py").write_text(textwrap.dedent(DAG))
    (tmp_path / "test_orders.py").write_text(textwrap.dedent(TEST))
    (tmp_path / "pytest.ini").write_text(textwrap.dedent(INI))
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout

    # without the option, the fixture fails with what to set
    (tmp_path / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    result = run_pytest(tmp_path)
    assert result.returncode != 0 and "set `cfqueues_airflow_home = true`" in result.stdout
