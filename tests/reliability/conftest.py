from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock

from ..helpers import TEST_TOKEN, point_connection


@pytest.fixture
def journaled_emulator(airflow_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudflareQueuesEmulator]:
    """A manual-clock emulator that keeps a journal of every delivery, ack and expiry, as the default
    Airflow connection (for DAG runs in this process and in the processes they start)."""
    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=ManualClock(), record_events=True) as emulator:
        point_connection(monkeypatch, emulator)
        yield emulator
