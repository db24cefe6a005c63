"""The connection works from every place Airflow keeps connections: env (JSON, URI), metadata DB, secrets backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

CHECK = (
    "from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook\n"
    "ok, message = CloudflareQueuesHook('cfq_source').test_connection()\n"
    "print('RESULT', ok, message)\n"
)
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    return env


def check(env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))


@pytest.fixture
def queue(emulator: CloudflareQueuesEmulator) -> str:
    emulator.create_queue("sourced")
    return "sourced"


@pytest.mark.slow
def test_from_the_metadata_db(emulator: CloudflareQueuesEmulator, queue: str, airflow_db: str) -> None:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    # stored as `airflow connections add` stores it, in the session's migrated DB; removed at the end
    with create_session() as session:
        session.add(Connection.from_json(json.dumps(emulator.airflow_connection(queue=queue)), conn_id="cfq_source"))
    try:
        _test_the_db_connection(emulator, dict(os.environ))
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "cfq_source").delete()


def _test_the_db_connection(emulator: CloudflareQueuesEmulator, env: dict[str, str]) -> None:
    # Airflow 3 reads DB connections in tasks (through the execution API) and in the CLI, not in a bare
    # process: `airflow connections test` loads it from the DB and runs the hook's test_connection().
    env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    result = subprocess.run(
        [AIRFLOW, "connections", "test", "cfq_source"], env=env, capture_output=True, text=True, timeout=180
    )
    assert "Connection success!" in result.stdout, result.stdout + result.stderr
    emulator.faults.set("get_queue", error=1.0)
    failing = subprocess.run(
        [AIRFLOW, "connections", "test", "cfq_source"], env=env, capture_output=True, text=True, timeout=180
    )
    assert "Connection failed!" in failing.stdout and "HTTP 50" in failing.stdout


@pytest.mark.slow
def test_from_a_secrets_backend(emulator: CloudflareQueuesEmulator, queue: str, tmp_path: Path) -> None:
    connections = tmp_path / "connections.json"
    connections.write_text(json.dumps({"cfq_source": emulator.airflow_connection(queue=queue)}))
    env = clean_env(tmp_path)
    env["AIRFLOW__SECRETS__BACKEND"] = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    env["AIRFLOW__SECRETS__BACKEND_KWARGS"] = json.dumps({"connections_file_path": str(connections)})
    assert check(env).startswith("RESULT True Connected: queue 'sourced'")


@pytest.mark.parametrize("form", ["json", "uri"])
def test_from_environment_variables(
    emulator: CloudflareQueuesEmulator, queue: str, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    value = (
        emulator.airflow_connection_uri(queue=queue)
        if form == "uri"
        else json.dumps(emulator.airflow_connection(queue=queue))
    )
    monkeypatch.setenv("AIRFLOW_CONN_CFQ_SOURCE", value)
    ok, message = CloudflareQueuesHook("cfq_source").test_connection()
    assert ok and message.startswith("Connected: queue 'sourced'"), message
