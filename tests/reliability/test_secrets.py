"""
The API token never appears in logs, task logs, XCom, exception texts or rendered templates.

Every test of the suite runs with the recognisable ``TEST_TOKEN``; tests/conftest.py checks each
test's captured output and failure report, and the whole metadata DB at the end of the session. The
tests here make sure those checks can fail, and drive the failure paths on purpose.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesError
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from .. import conftest
from ..helpers import FAST_RETRY, TEST_TOKEN, task_states
from ..secrets_check import leaks_in_db, leaks_in_files


def test_the_checks_find_a_planted_token(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        db.execute("CREATE TABLE xcom (value BLOB)")
        db.execute("INSERT INTO xcom VALUES (?)", (f'{{"token": "{TEST_TOKEN}"}}'.encode(),))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "task.log").write_text(f"Authorization: Bearer {TEST_TOKEN}\n")
    assert leaks_in_db(tmp_path / "db.sqlite", TEST_TOKEN) == ["xcom.value"]
    assert leaks_in_files(tmp_path, TEST_TOKEN) == ["db.sqlite", "logs/task.log"]

    class Report:
        nodeid, when, longrepr = "planted", "call", None
        sections = [("Captured stdout call", f"token={TEST_TOKEN}")]

    conftest.pytest_runtest_logreport(Report())  # type: ignore[arg-type]
    assert conftest.TOKEN_LEAKS.pop() == "planted (call)"


def test_failure_paths_keep_the_token_out_of_exceptions(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("q", http_pull=False)
    hook = CloudflareQueuesHook(connection, retry_policy=FAST_RETRY)
    emulator.faults.set("metrics", error=1.0)
    failures = [
        lambda: hook.pull_messages(queue="q"),
        lambda: hook.get_metrics("q"),
        lambda: hook.push_message(b"bytes", queue="q"),
        lambda: hook.get_queue("missing"),
    ]
    for failure in failures:
        with pytest.raises(CloudflareQueuesError) as info:
            failure()
        text = "".join(traceback.format_exception(info.value))
        assert TEST_TOKEN not in text and TEST_TOKEN not in repr(info.value)
    assert TEST_TOKEN not in repr(hook) and TEST_TOKEN not in repr(hook.settings)


@pytest.mark.slow
def test_airflow_runs_keep_the_token_out_of_logs_xcom_and_rendered_fields(
    airflow_db: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.dags.cfqueues_test_dags import push_dag, strict_dag

    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emulator:
        emulator.create_queue("pushed")
        for name, value in {
            **emulator.airflow_connection_env(),
            **emulator.airflow_connection_env("cfq_other"),
        }.items():
            monkeypatch.setenv(name, value)
        ok = push_dag.test(run_conf={"queue": "pushed", "conn_id": "cfq_other", "delay": "0"})
        failed = strict_dag.test(run_conf={"queue": "missing"})  # fails: no such queue
    assert set(task_states(ok).values()) == {"success"}
    assert task_states(failed) == {"drain": "failed"}
    captured = capfd.readouterr()
    assert "no queue named 'missing'" in captured.out + captured.err + caplog.text  # the failure was logged ...
    assert TEST_TOKEN not in captured.out + captured.err + caplog.text  # ... without the token
    assert leaks_in_db(Path(airflow_db) / "airflow.db", TEST_TOKEN) == []
    assert leaks_in_files(Path(airflow_db), TEST_TOKEN) == []  # task logs, the DB file, everything
