"""The R2 CSV example through dag.test(): 50 objects under two prefixes, a rule on one, each object of
that prefix loaded once (a duplicate notification changes nothing), one deleted before its load
reported, a message that is no notification rejected, an overlapping rule refused."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.emulator.r2 import RuleError
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import TEST_TOKEN, task_states, xcom


@pytest.mark.slow
def test_csv_objects_landing_in_r2_are_loaded_once(
    emulator_connection: Callable[[CloudflareQueuesEmulator], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from example_dags.example_cfqueues_r2_csv import BUCKET, QUEUE, dag, loaded

    store = tmp_path / "r2"
    monkeypatch.setenv("CFQ_EXAMPLE_OBJECT_DIR", str(store))
    db_path = str(tmp_path / "loads.sqlite")
    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emulator:
        for queue in (QUEUE, "example-r2-unreadable"):
            emulator.create_queue(queue)
        emulator_connection(emulator)
        emulator.add_r2_notification_rule(BUCKET, QUEUE, prefix="incoming/", suffix=".csv")  # the DAG's own rule
        with pytest.raises(RuleError, match="overlaps"):  # one bucket's rules must not overlap
            emulator.add_r2_notification_rule(BUCKET, "example-r2-unreadable", prefix="incoming/2026/")
        etags = {}
        for n in range(25):
            for prefix in ("incoming/", "archive/"):
                key = f"{prefix}{n:02d}.csv"
                content = "".join(f"{n},{line},{line * n}\n" for line in range(3)).encode()
                (store / BUCKET / key).parent.mkdir(parents=True, exist_ok=True)
                (store / BUCKET / key).write_bytes(content)
                etags[key] = hashlib.md5(content, usedforsecurity=False).hexdigest()
                emulator.r2_object_event(BUCKET, key, size=len(content), etag=etags[key])
        assert len(emulator.messages(QUEUE)) == 25  # only the rule's prefix reaches the queue
        emulator.r2_object_event(BUCKET, "incoming/03.csv", size=30, etag=etags["incoming/03.csv"])  # duplicate
        (store / BUCKET / "incoming/07.csv").unlink()  # deleted before it is loaded
        CloudflareQueuesHook(queue=QUEUE).push_messages([{"hello": "world"}])  # not a notification
        run = dag.test(run_conf={"db_path": db_path})
        assert task_states(run) == {"watch_incoming_csv": "success", "load": "success"}
        assert xcom(run, "watch_incoming_csv")["prefix"] == "incoming/"  # the rule there already: kept
        result = xcom(run, "load")
        assert (result["pulled"], result["acked"], result["rejected"], result["failed"]) == (27, 27, 1, 0)
        objects = loaded(db_path)
        expected = [f"incoming/{n:02d}.csv" for n in range(25) if n != 7]
        assert [o["key"] for o in objects] == expected and {o["rows"] for o in objects} == {3}
        assert {o["etag"] for o in objects} == {etags[key] for key in expected}
        with sqlite3.connect(db_path) as db:
            assert db.execute("SELECT COUNT(*) FROM csv_rows").fetchone() == (72,)  # 24 files, 3 rows, once
        assert "incoming/07.csv was deleted before it was loaded" in caplog.text
        assert emulator.metrics(QUEUE)["backlog_count"] == 0
        assert len(emulator.messages("example-r2-unreadable")) == 1
        assert [len(q.rules) for q in CloudflareQueuesHook().list_r2_notification_rules(BUCKET).queues] == [1]
