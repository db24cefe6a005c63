from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock

from .openapi_check import OpenAPIRecorder

TEST_TOKEN = "cfq-test-token-7f3e9a1c"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


@pytest.fixture
def emulator(clock: ManualClock) -> Iterator[CloudflareQueuesEmulator]:
    """An emulator on a manual clock whose every exchange is validated against the OpenAPI fragment."""
    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=clock) as emu:
        recorder = OpenAPIRecorder(f"http://127.0.0.1:{emu.port}")
        emu.app.observers.append(recorder)
        yield emu
        assert not recorder.violations, "\n".join(recorder.violations)
