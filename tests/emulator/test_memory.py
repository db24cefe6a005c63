"""The emulator's memory follows its backlog, not its traffic: a flood of 1 M acks, measured in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock
from airflow_provider_cfqueues.emulator.state import MAX_FINISHED_LEASES_KEPT

pytestmark = pytest.mark.airflow_agnostic  # the emulator alone: run in the Airflow 3 suite only

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_flood_of_a_million_acks_grows_the_emulator_by_at_most_150_mib() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.emulator.flood_memory", "1000000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\nflood: {figures}")
    assert figures["acked"] >= 1_000_000 and figures["backlog"] == 0
    assert figures["peak_growth_kib"] <= 150 * 1024  # was 619 MiB: every finished lease for 24 h, stale heaps


def test_a_late_ack_for_a_forgotten_lease_gets_the_answer_of_an_unknown_one(clock: ManualClock) -> None:
    with CloudflareQueuesEmulator(clock=clock) as emulator:
        emulator.create_queue("q")
        state, account, queue_id = emulator.state, emulator.account_id, emulator.queue("q").queue_id
        from airflow_provider_cfqueues.emulator.state import PushItem

        state.push(account, queue_id, [PushItem(body='"x"', content_type="json", size=3)])
        (first,) = [m["lease_id"] for m in state.pull(account, queue_id, 1, None)["messages"]]
        state.ack(account, queue_id, [first], [])
        again = state.ack(account, queue_id, [first], [])["warnings"][first]
        assert "already acked" in again  # remembered: a duplicate ack is reported as such
        clock.advance(86_401)  # past the 24 h the emulator remembers finished leases
        state.metrics(account, queue_id)
        forgotten = state.ack(account, queue_id, [first], [])["warnings"][first]
        assert "unknown lease id" in forgotten and not emulator.queue("q").leases
        assert MAX_FINISHED_LEASES_KEPT == 100_000  # the other bound, stated in docs/emulator.md
