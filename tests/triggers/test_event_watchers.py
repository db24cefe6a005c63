"""Watchers of a queue that R2 and event subscriptions write to: the shorthands route, the payload
carries the typed event, and the drain's ``process`` reads it too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_cfqueues.api.events import R2ObjectEvent
from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
from airflow_provider_cfqueues.operators.consume import CloudflareQueuesPullAndAckOperator
from airflow_provider_cfqueues.testing import WatcherHarness
from airflow_provider_cfqueues.triggers.message import CloudflareQueuesMessageTrigger

from ..api.test_events import PUT, WORKFLOW


def notification(key: str, action: str = "PutObject", bucket: str = "uploads") -> dict[str, Any]:
    return {**PUT, "bucket": bucket, "action": action, "object": {**PUT["object"], "key": key}}


@pytest.mark.airflow3
def test_watchers_route_notifications_by_bucket_prefix_suffix_and_event_type(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    emulator.create_queue("events")
    sent = [notification(f"in/{n}.csv") for n in range(3)] + [notification("in/readme.txt"), WORKFLOW]
    sent += [notification("in/9.csv", bucket="other"), {**WORKFLOW, "metadata": {"eventSchemaVersion": 7}}]
    CloudflareQueuesHook(queue="events").push_messages(sent)
    shared = {"cloudflare_queue": "events", "poll_interval": 0.05}
    csv = CloudflareQueuesMessageTrigger(
        **shared,
        message_filter={"r2": {"bucket": "uploads", "prefix": "in/", "suffix": ".csv", "actions": "object-create"}},
    )
    done = CloudflareQueuesMessageTrigger(**shared, message_filter={"event_type": "cf.workflows.workflow.instance.*"})

    async def route() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with WatcherHarness() as triggerer:
            loads = triggerer.watch(csv, asset="loads")
            runs = triggerer.watch(done, asset="workflow_runs")
            await triggerer.until(lambda: len(triggerer.messages(loads)) == 3 and len(triggerer.messages(runs)) == 1)
            return triggerer.messages(loads), triggerer.messages(runs)

    loads, runs = asyncio.run(route())
    assert sorted(m["event"]["key"] for m in loads) == ["in/0.csv", "in/1.csv", "in/2.csv"]
    assert {m["event"]["kind"] for m in loads} == {"r2"} and loads[0]["event"]["etag"] == PUT["object"]["eTag"]
    (run,) = runs
    assert run["event"]["type"] == "cf.workflows.workflow.instance.completed" and run["event"]["schema_version"] == 1


def test_the_drains_process_reads_the_event(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("events")
    CloudflareQueuesHook(queue="events").push_messages(
        [notification("in/a.csv"), notification("in/a.csv", "DeleteObject")]
    )
    seen: list[tuple[str, bool]] = []

    def load(message: PulledMessage) -> None:
        event = message.event
        assert isinstance(event, R2ObjectEvent), message.event_problem
        seen.append((event.key, event.created))

    result = CloudflareQueuesPullAndAckOperator(task_id="load", cloudflare_queue="events", process=load).execute({})  # type: ignore[arg-type]
    assert result["acked"] == 2 and sorted(seen) == [("in/a.csv", False), ("in/a.csv", True)]
