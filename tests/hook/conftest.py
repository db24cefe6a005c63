from __future__ import annotations

import pytest

from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import FAST_RETRY


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def hook(connection: str, sleeps: list[float]) -> CloudflareQueuesHook:
    hook = CloudflareQueuesHook(connection, retry_policy=FAST_RETRY)
    hook._sleep = sleeps.append

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    hook._asleep = record
    return hook
