"""Eight PullAndAck drains on one queue at once never process a message twice unless a lease expired."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.consume.drain import Drainer
from airflow_provider_cfqueues.consume.drain_plan import DrainPlan
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import FAST_RETRY, TEST_TOKEN, point_connection

log = logging.getLogger("test-concurrency")


def test_eight_drains_on_one_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    with CloudflareQueuesEmulator(token=TEST_TOKEN, record_events=True) as emulator:
        emulator.create_queue("shared")
        point_connection(monkeypatch, emulator)
        CloudflareQueuesHook(queue="shared").push_messages(list(range(4_000)))
        processed: list[tuple[str, int, str]] = []
        lock = threading.Lock()

        def make_process(task: str) -> Callable[[PulledMessage], None]:
            def process(message: PulledMessage) -> None:
                with lock:
                    processed.append((message.id, message.body, task))

            return process

        def make_hook() -> CloudflareQueuesHook:
            return CloudflareQueuesHook(queue="shared", retry_policy=FAST_RETRY)

        plan = DrainPlan(batch_size=25, visibility_timeout=60)
        tasks = [
            threading.Thread(target=Drainer(make_hook, "shared", plan, make_process(f"task-{i}"), log=log).run)
            for i in range(8)
        ]
        for thread in tasks:
            thread.start()
        for thread in tasks:
            thread.join()

        times = Counter(message_id for message_id, _, _ in processed)
        expired = {m for e in emulator.events if e.kind == "lease_expired" for m in e.message_ids}
        assert {m for m, n in times.items() if n > 1} <= expired  # twice only after a lease expired
        assert sorted(n for _, n, _ in processed) == list(range(4_000))  # here, no lease expired: exactly once
        assert len({task for _, _, task in processed}) == 8  # all eight took part
        assert emulator.metrics("shared")["backlog_count"] == 0
