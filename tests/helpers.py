"""What the test modules share that is not a fixture: constants, one way to point a connection at an
emulator, and readers of DAG runs and triggers (fixtures are in the conftest files)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cfqueues.api import operations
from airflow_provider_cfqueues.api.retry import RetryPolicy
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator

TEST_TOKEN = "cfq-test-token-7f3e9a1c"
#: no waiting between retries in tests (Retry-After still counts: the tests record the delays)
FAST_RETRY = RetryPolicy(initial_backoff=0, max_backoff=0, max_attempts=5)


def request_of(operation: str, method: str = "POST", path: str = "/x") -> operations.ApiRequest:
    """A bare request of ``operation`` (for parsing answers in tests), with the answer type it carries."""
    answers = {
        "push": operations.PUSH_ANSWER,
        "push_batch": operations.PUSH_ANSWER,
        "pull": operations.PULL_ANSWER,
        "ack": operations.ACK_ANSWER,
        "metrics": operations.METRICS_ANSWER,
    }
    return operations.ApiRequest(operation, method, path, answer=answers[operation])


def point_connection(
    monkeypatch: pytest.MonkeyPatch,
    emulator: CloudflareQueuesEmulator,
    conn_id: str = "cloudflare_queues_default",
    queue: str | None = None,
    *,
    token: str | None = None,
) -> str:
    """Define Airflow connection ``conn_id`` as ``emulator`` for this test (with a ``queue`` extra, another
    ``token``); returns the connection id."""
    for name, value in emulator.airflow_connection_env(conn_id, queue, token=token).items():
        monkeypatch.setenv(name, value)
    return conn_id


def task_states(run: Any) -> dict[str, str]:
    """task_id (with [map_index] for mapped tasks) -> state."""
    states = {}
    for ti in run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state)
    return states


def xcom(run: Any, task_id: str, map_index: int = -1, key: str = "return_value") -> Any:
    """The XCom value a task instance of ``run`` pushed (Airflow 3 and 2.11)."""
    from airflow_provider_cfqueues._compat import AIRFLOW_3

    if not AIRFLOW_3:
        from airflow.models.xcom import XCom

        return XCom.get_one(run_id=run.run_id, key=key, dag_id=run.dag_id, task_id=task_id, map_index=map_index)

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.scalar(
            XComModel.get_many(
                run_id=run.run_id, key=key, dag_ids=run.dag_id, task_ids=task_id, map_indexes=map_index
            ).with_only_columns(XComModel.value)
        )
    return XComModel.deserialize_value(type("X", (), {"value": value})) if value is not None else None


async def trigger_events(trigger: Any, count: int) -> list[dict[str, Any]]:
    """The payloads of the first ``count`` events ``trigger`` fires (run it with ``asyncio.run``)."""
    events = []
    async for event in trigger.run():
        events.append(event.payload)
        if len(events) == count:
            break
    return events
