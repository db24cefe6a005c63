from __future__ import annotations

import pytest

from airflow_provider_cfqueues.api.retry import RetryPolicy
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

#: no waiting between retries in tests (Retry-After still counts: the tests record the delays)
FAST_RETRY = RetryPolicy(initial_backoff=0, max_backoff=0, max_attempts=5)


@pytest.fixture
def connection(emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in emulator.airflow_connection_env().items():
        monkeypatch.setenv(name, value)
    return "cloudflare_queues_default"


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
