from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

# Airflow reads its configuration when first imported: give the whole session a private home and a
# SQLite metadata DB before any test module imports it.
AIRFLOW_HOME = tempfile.mkdtemp(prefix="cfqueues-airflow-home-")
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"

import pytest  # noqa: E402

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock  # noqa: E402

from .openapi_check import OpenAPIRecorder  # noqa: E402

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
        emu.openapi = recorder  # type: ignore[attr-defined]
        yield emu
        assert not recorder.violations, "\n".join(recorder.violations)
