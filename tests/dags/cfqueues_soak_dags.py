"""DAGs for the reliability tests: a producer + drainer under faults, and a drainer that gets killed."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.operators.queues import (
    CloudflareQueuesPullAndAckOperator,
    CloudflareQueuesPushOperator,
)

START = datetime(2026, 1, 1)

#: set by the soak test: called with (message, succeeded) each time process() handles a message
RECORDER: Callable[[PulledMessage, bool], None] | None = None


def flaky_process(message: PulledMessage) -> None:
    """Fails on every 97th message at its first attempt; records every outcome before returning."""
    succeeded = not (message.body["n"] % 97 == 0 and message.attempts == 1)
    if RECORDER is not None:
        RECORDER(message, succeeded)
    if not succeeded:
        raise RuntimeError(f"message {message.body['n']} failed on its first attempt")


with DAG(
    "cfq_soak", schedule=None, start_date=START, params={"queue": "soak", "n": Param(5_000, type="integer")}
) as soak_dag:

    @task
    def produce(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        assert params is not None
        return [{"n": n, "pad": "x" * (n % 300)} for n in range(params["n"])]

    push = CloudflareQueuesPushOperator(task_id="push", cloudflare_queue="{{ params.queue }}", messages=produce())
    drain = CloudflareQueuesPullAndAckOperator(
        task_id="drain",
        cloudflare_queue="{{ params.queue }}",
        process=flaky_process,
        batch_size=100,
        concurrency=4,
        visibility_timeout=5,
        wait_for_in_flight=60,
        fail_on_error=False,
    )
    push >> drain


def record_then_maybe_hang(message: PulledMessage, log_path: str, hang_after: int | str) -> None:
    """Appends the message number to ``log_path``; after ``hang_after`` lines, hangs (to be killed)."""
    hang_after = int(hang_after)  # rendered from a template: a str
    with Path(log_path).open("a") as log:
        log.write(f"{message.body['n']} {message.id}\n")
    if hang_after >= 0 and len(Path(log_path).read_text().splitlines()) >= hang_after:
        Path(log_path + ".ready").touch()
        time.sleep(3_600)


with DAG(
    "cfq_crash",
    schedule=None,
    start_date=START,
    params={"queue": "crash", "log_path": "/tmp/cfq_crash.log", "hang_after": -1},
) as crash_dag:
    CloudflareQueuesPullAndAckOperator(
        task_id="drain",
        cloudflare_queue="{{ params.queue }}",
        process=record_then_maybe_hang,
        process_kwargs={"log_path": "{{ params.log_path }}", "hang_after": "{{ params.hang_after }}"},
        batch_size=20,
        visibility_timeout=30,
    )
