from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock

from ..conftest import TEST_TOKEN


@pytest.fixture
def journaled_emulator(airflow_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudflareQueuesEmulator]:
    """A manual-clock emulator that keeps a journal of every delivery, ack and expiry, as the default
    Airflow connection (for DAG runs in this process and in the processes they start)."""
    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=ManualClock(), record_events=True) as emulator:
        for name, value in emulator.airflow_connection_env().items():
            monkeypatch.setenv(name, value)
        yield emulator
