"""The async path: the same flows over httpx, as the triggers use it."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesNotFoundError
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..scripted_faults import ScriptedFaults


def test_async_round_trip_with_retries(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook, sleeps: list[float]
) -> None:
    emulator.create_queue("q")
    emulator.app.faults = ScriptedFaults({"pull": ["error", "throttle"], "ack": ["html"]}, retry_after=1)

    async def scenario() -> None:
        pushed = await hook.apush_messages([{"n": i} for i in range(150)], queue="q")
        assert (pushed.messages, pushed.requests) == (150, 2)
        pulled = await hook.apull_messages(queue="q", batch_size=100)
        assert len(pulled.messages) == 100 and pulled.backlog_count == 150
        acked = await hook.aack_messages(queue="q", acks=pulled.messages)
        assert acked.ack_count == 100
        metrics = await hook.aget_metrics("q")
        assert metrics.backlog_count == 50
        queue = await hook.aget_queue("q")
        assert queue.http_pull_consumer is not None
        with pytest.raises(CloudflareQueuesNotFoundError):
            await hook.aget_metrics("0" * 32)
        await hook.aclose()

    asyncio.run(scenario())
    assert emulator.app.requests["pull"] == 3 and emulator.app.requests["ack"] == 2
    assert sleeps[:2] == [pytest.approx(1, abs=1), 1] or 1 in sleeps


def test_async_client_follows_the_event_loop(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    emulator.create_queue("q")
    for _ in range(2):  # a new loop each time, as triggerers and asyncio.run do
        assert asyncio.run(hook.aget_metrics("q")).backlog_count == 0
