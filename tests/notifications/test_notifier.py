"""CloudflareQueuesNotifier: task and DAG callbacks through dag.test(), and the deadline-alert async path."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.notifications.cloudflare_queues import CloudflareQueuesNotifier, callback_event

from ..helpers import point_connection, task_states


def bodies(emulator: CloudflareQueuesEmulator, queue: str) -> list[Any]:
    return [
        json.loads(base64.b64decode(m.body)) if m.content_type == "json" else m.body for m in emulator.messages(queue)
    ]


@pytest.mark.slow
def test_task_and_dag_callbacks_push_their_messages(
    airflow_db: str, emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.dags.cfqueues_notifier_dags import notifier_dag

    for queue in ("alerts", "events", "from-extra"):
        emulator.create_queue(queue)
    point_connection(monkeypatch, emulator, queue="from-extra")
    run = notifier_dag.test()
    assert task_states(run) == {"load": "success", "flaky": "success", "broken": "failed"}
    (loaded,) = bodies(emulator, "events")  # templated, nested values too
    assert loaded == {"event": "loaded", "task": "load", "run": run.run_id}
    alerts = bodies(emulator, "alerts")
    retried = next(b for b in alerts if b.get("task_id") == "flaky")  # the default message
    assert retried["exception"] == "ConnectionError: warehouse busy" and retried["try_number"] == 1
    assert (retried["dag_id"], retried["run_id"]) == ("cfq_test_notifier", run.run_id)
    assert {"event": "dag failed", "dag": "cfq_test_notifier"} in alerts
    (failed,) = bodies(emulator, "from-extra")
    assert failed["task_id"] == "broken" and failed["exception"] == "ValueError: bad input file"


@pytest.mark.airflow3
def test_a_deadline_alert_runs_it_on_the_triggerer_path(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    """Airflow's CallbackTrigger, as the triggerer runs a deadline's AsyncCallback: it constructs the
    notifier with the kwargs and the deadline's context, and awaits it (the async hook)."""
    from airflow.sdk import AsyncCallback
    from airflow.triggers.callback import CallbackTrigger

    emulator.create_queue("alerts")
    callback = AsyncCallback(CloudflareQueuesNotifier, kwargs={"cloudflare_queue": "alerts"}).serialize()
    context = {
        "dag_run": {"dag_id": "nightly", "run_id": "scheduled__2026-12-07", "state": "running"},
        "deadline": {"id": "d1", "deadline_time": "2026-12-07T04:00:00Z"},
    }
    trigger = CallbackTrigger(
        callback_path=callback["path"], callback_kwargs={**callback["kwargs"], "context": context}
    )

    async def events() -> list[Any]:
        return [event.payload async for event in trigger.run()]

    *_, done = asyncio.run(events())
    assert done["state"] == "success", done
    (sent,) = bodies(emulator, "alerts")
    assert sent == {
        "source": "airflow",
        "dag_id": "nightly",
        "run_id": "scheduled__2026-12-07",
        "state": "running",
        "deadline": {"id": "d1", "deadline_time": "2026-12-07T04:00:00Z"},
    }


def test_the_same_queue_rules_as_the_operators(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError, CloudflareQueuesValidationError

    with pytest.raises(TypeError, match="names its queue with cloudflare_queue="):
        CloudflareQueuesNotifier(queue="alerts")
    with pytest.raises(TypeError, match=r"message_body= \(Amazon SQS's name\): here, message="):
        CloudflareQueuesNotifier(cloudflare_queue="alerts", message_body="x")
    with pytest.raises(CloudflareQueuesConfigError, match="no Cloudflare queue to notify"):
        CloudflareQueuesNotifier().notify({})  # no cloudflare_queue, no queue extra
    with pytest.raises(CloudflareQueuesValidationError, match="rendered empty"):
        CloudflareQueuesNotifier(cloudflare_queue="").notify({})
    emulator.create_queue("alerts")
    CloudflareQueuesNotifier(cloudflare_queue="alerts", message="plain text", delay_seconds=60).notify({})
    (kept,) = emulator.messages("alerts")
    assert (kept.body, kept.content_type, kept.state) == ("plain text", "text", "delayed")


def test_the_default_message_reads_task_dag_and_deadline_contexts() -> None:
    class TI:
        dag_id, run_id, task_id, map_index, try_number, state = "d", "r", "t", 2, 3, "failed"

    assert callback_event({"ti": TI(), "exception": KeyError("x")}) == {
        "source": "airflow",
        "dag_id": "d",
        "run_id": "r",
        "task_id": "t",
        "map_index": 2,
        "try_number": 3,
        "state": "failed",
        "exception": "KeyError: 'x'",
    }
    assert callback_event({"dag_run": {"dag_id": "d", "run_id": "r"}, "reason": "task_failure"})["reason"] == (
        "task_failure"
    )
