"""
A user's project tests its own DAG with our pytest plugin alone: the ini options give the session a
private Airflow home, ``cfqueues_airflow_db`` migrates it, and ``dag.test()`` runs against the
emulator. Run in a subprocess with none of this suite's Airflow environment, as a user would.
"""

from __future__ import annotations

import json
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


BACKEND = """
from airflow.secrets import BaseSecretsBackend


class ProductionBackend(BaseSecretsBackend):
    '''A user's secrets backend: it knows the production connection.'''

    def get_conn_value(self, conn_id):
        return {production!r} if conn_id == "cloudflare_queues_default" else None
"""

HOSTILE_TESTS = """
import pytest


@pytest.mark.cfqueues(queues=["orders"])
def test_orders_dag(cfqueues_airflow_db, cfqueues_emulator, cfqueues_connection):
    from dags.orders import dag

    run = dag.test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    assert cfqueues_emulator.metrics("orders")["backlog_count"] == 0


def test_the_users_connections_and_variables_are_out_of_reach(cfqueues_airflow_db):
    import os

    assert not [name for name in os.environ if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))]


def test_a_request_to_another_server_is_stopped_before_it_is_sent(cfqueues_emulator, monkeypatch):
    from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError
    from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

    monkeypatch.setenv("AIRFLOW_CONN_ELSEWHERE", {production!r})  # a test that forgot the fixture
    with pytest.raises(CloudflareQueuesConfigError, match="lets the provider reach only its emulator"):
        CloudflareQueuesHook("elsewhere").get_metrics(queue="prod-only")


@pytest.mark.cfqueues(manul_clock=True)
def test_misspelt_option(cfqueues_emulator):
    pass


@pytest.mark.cfqueues(faults={"pull": "error"})
def test_faults_not_a_plan(cfqueues_emulator):
    pass
"""

RUNNER = """
import json, os, sys
import pytest

names = sys.argv[1].split(",")
before = {name: os.environ.get(name) for name in names}
code = pytest.main(["-q", "-p", "no:cacheprovider", "-rE", "."])
after = {name: os.environ.get(name) for name in names}
print("ENVIRONMENT " + json.dumps({"before": before, "after": after}))
sys.exit(code)
"""


@pytest.mark.slow
def test_the_plugin_never_reaches_a_server_the_test_did_not_name(tmp_path: Path) -> None:
    """
    A user's secrets backend and shell (``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``) point at production (here, a
    second emulator holding a production queue): the private Airflow home ignores the backend and hides
    the variables for the session, a request through the provider to any server but the session's
    emulator fails the test before it is sent, so the DAG test runs against the test's emulator and
    production sees no request; without the private home, the connection fixture
    fails the test instead, and ``cfqueues_airflow_db`` says which option to set. Unknown marker options
    and fault rules that are not a plan fail at setup, and the user's environment is given back when the
    session ends.
    """
    from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator

    with CloudflareQueuesEmulator() as production:
        production.create_queue("prod-only")
        (tmp_path / "dags").mkdir()
        (tmp_path / "dags" / "__init__.py").write_text("")
        (tmp_path / "dags" / "orders.py").write_text(textwrap.dedent(DAG))
        (tmp_path / "secrets_backend.py").write_text(
            textwrap.dedent(BACKEND).format(production=production.airflow_connection_uri())
        )
        hostile = textwrap.dedent(HOSTILE_TESTS).replace("{production!r}", repr(production.airflow_connection_uri()))
        (tmp_path / "test_orders.py").write_text(hostile)
        (tmp_path / "pytest.ini").write_text(textwrap.dedent(INI))
        (tmp_path / "run.py").write_text(textwrap.dedent(RUNNER))
        users_home = tmp_path / "users-airflow-home"
        users = {
            "AIRFLOW_HOME": str(users_home),
            "AIRFLOW__SECRETS__BACKEND": "secrets_backend.ProductionBackend",
            "AIRFLOW__CORE__FERNET_KEY": "dXNlcnMtb3duLWtleS0zMi1ieXRlcy1sb25nLi4uLi4=",  # the user's own key
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{users_home}/users.db",
            # the user's shell points Airflow at production: hidden for the session, given back after
            "AIRFLOW_CONN_CLOUDFLARE_QUEUES_DEFAULT": production.airflow_connection_uri(),
            "AIRFLOW_CONN_PROD_QUEUES": production.airflow_connection_uri(),
            "AIRFLOW_VAR_TARGET_QUEUE": "prod-only",
            "PYTHONPATH": str(tmp_path),
        }
        result = run_python(tmp_path, ["run.py", ",".join(users)], users)
        output = result.stdout
        assert "3 passed, 2 errors" in output, output[-4000:] + result.stderr[-2000:]
        assert "cfqueues: hidden for this session (given back at its end): AIRFLOW_CONN_CLOUDFLARE_QUEUES_DEFAULT" in (
            output
        )
        assert "unknown option 'manul_clock' (did you mean 'manual_clock'?)" in output
        assert "faults must be FaultPlan or None, got {'pull': 'error'}" in output
        assert sum(production.app.requests.values()) == 0  # production was never asked anything
        environment = json.loads(output.split("ENVIRONMENT ", 1)[1].splitlines()[0])
        assert environment["after"] == environment["before"] == users  # given back as it was

        # without the private home, the user's backend is Airflow's first source: the fixture stops the test
        (tmp_path / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
        (tmp_path / "test_orders.py").write_text(
            "def test_it(cfqueues_emulator, cfqueues_connection):\n    raise AssertionError('not reached')\n\n\n"
            "def test_db(cfqueues_airflow_db):\n    raise AssertionError('not reached')\n"
        )
        users_home.mkdir()
        result = run_python(tmp_path, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "."], users)
        output = result.stdout
        assert "2 errors" in output and "not to the emulator at" in output, output[-3000:]
        assert "set `cfqueues_airflow_home = true`" in output
        assert "not reached" not in output and sum(production.app.requests.values()) == 0


def run_python(project: Path, arguments: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Python in ``project`` with the user's own environment and none of this suite's Airflow settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=project,
        env={**base, **environment},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize(
    "ini",
    [
        "[pytest]\ncfqueues_airflow_home = true\ncfqueues_dags_folder = dags        # your DAGs folder\n",
        "[pytest]\ncfqueues_airflow_home = true\ncfqueues_dags_folder = no-such-folder\n",
    ],
)
def test_a_dags_folder_that_does_not_exist_stops_the_session_naming_it(tmp_path: Path, ini: str) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "pytest.ini").write_text(ini)
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    result = run_pytest(tmp_path)
    assert result.returncode != 0
    folder = ini.split("= ")[-1].strip()
    said = result.stdout + result.stderr
    assert f"cfqueues_dags_folder = {folder!r}: there is no folder {tmp_path / folder}" in said, said[-2000:]
    assert "a comment must stand on its own line" in said
