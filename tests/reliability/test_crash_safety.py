"""
Crash safety: the process running PullAndAck is SIGKILLed in the middle of a batch; once the leases
expire, a new run drains everything. Same for the split pull -> process -> ack pattern when the run
dies before the ack task.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import task_states

pytestmark = pytest.mark.slow

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def test_killed_pull_and_ack_loses_nothing(journaled_emulator: CloudflareQueuesEmulator, tmp_path: Path) -> None:
    journaled_emulator.create_queue("crash")
    CloudflareQueuesHook(queue="crash").push_messages([{"n": n} for n in range(60)])
    log_path = tmp_path / "processed.log"
    conf = json.dumps({"queue": "crash", "log_path": str(log_path), "hang_after": 15})
    # the task runs in its own process: a worker that dies mid-batch. A run starts with a batch of 10
    # (max_consecutive_failures), then 20: it dies with 5 of the second batch processed
    from airflow_provider_cfqueues._compat import AIRFLOW_3

    # Airflow 3 finds the DAG in its bundles (the "test-dags" bundle); Airflow 2.11 is told the file
    dags = Path(__file__).parents[1] / "dags" / "cfqueues_soak_dags.py"
    where = [] if AIRFLOW_3 else ["-S", str(dags)]
    output = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [AIRFLOW, "tasks", "test", *where, "cfq_crash", "drain", "--task-params", conf],
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not Path(f"{log_path}.ready").exists():
            assert worker.poll() is None, "the task ended early:\n" + (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the task never reached the crash point"
            time.sleep(0.2)
        os.killpg(worker.pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        output.close()
    before = Counter(m.state for m in journaled_emulator.messages("crash"))
    assert before == {"available": 30, "leased": 20}  # batch 1 acked; batch 2 leased, 5 done, never acked

    journaled_emulator.clock.advance(30)  # type: ignore[attr-defined]  # the visibility timeout: the leases expire
    from tests.dags.cfqueues_soak_dags import crash_dag

    run = crash_dag.test(run_conf={"queue": "crash", "log_path": str(log_path), "hang_after": -1})
    assert task_states(run) == {"drain": "success"}
    assert journaled_emulator.metrics("crash")["backlog_count"] == 0
    processed = Counter(int(line.split()[0]) for line in log_path.read_text().splitlines())
    assert set(processed) == set(range(60))  # nothing lost
    reprocessed = {n for n, times in processed.items() if times > 1}
    assert len(reprocessed) == 5  # processed by the killed worker, not acked: processed again (at-least-once)
    expired = {m for e in journaled_emulator.events if e.kind == "lease_expired" for m in e.message_ids}
    assert len(expired) == 20


def test_split_pattern_survives_a_run_that_dies_before_the_ack(journaled_emulator: CloudflareQueuesEmulator) -> None:
    from example_dags.example_cfqueues_split_pull_ack import dag

    journaled_emulator.create_queue("example-jobs")
    CloudflareQueuesHook(queue="example-jobs").push_messages([{"job": n, "flaky": False} for n in range(8)])
    # the run dies after processing: its ack task never runs (marked success without running)
    died = dag.test(mark_success_pattern="ack")
    assert task_states(died)["pull"] == "success"
    assert {m.state for m in journaled_emulator.messages("example-jobs")} == {"leased"}

    journaled_emulator.clock.advance(600)  # type: ignore[attr-defined]  # the pull's visibility timeout (10 minutes)
    again = dag.test()
    assert set(task_states(again).values()) == {"success"}
    assert journaled_emulator.metrics("example-jobs")["backlog_count"] == 0
    attempts = [e for e in journaled_emulator.events if e.kind == "deliver"]
    assert sum(len(e.message_ids) for e in attempts) == 16  # every job delivered twice, none lost
