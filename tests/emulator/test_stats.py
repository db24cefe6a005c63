"""
The emulator's stats endpoint, ``GET {base_url}/accounts/{account}/emulator/stats``: per-queue counters a
full-stack test reads over HTTP from a CLI emulator, behind the token check, versioned.
"""

from __future__ import annotations

import pytest
import requests

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock

from ..raw_api import RawApi

pytestmark = pytest.mark.airflow_agnostic  # the emulator alone: run in the Airflow 3 suite only


def stats(emulator: CloudflareQueuesEmulator, token: str | None = None) -> requests.Response:
    return requests.get(
        f"{emulator.base_url}/accounts/{emulator.account_id}/emulator/stats",
        headers={"Authorization": f"Bearer {token or emulator.token}"},
        timeout=10,
    )


def test_the_counters_of_every_queue_over_http(clock: ManualClock) -> None:
    with CloudflareQueuesEmulator(clock=clock, read_only_token="reader") as emulator:
        emulator.create_queue("orders", max_retries=1, dead_letter_queue="orders-dlq", visibility_timeout_ms=30_000)
        api = RawApi(emulator)
        orders = emulator.queue("orders").queue_id
        api.ok("POST", f"/{orders}/messages/batch", {"messages": [{"body": n} for n in range(5)]})
        leased = api.ok("POST", f"/{orders}/messages/pull", {"batch_size": 5})["messages"]
        acks = [{"lease_id": m["lease_id"]} for m in leased[:2]]
        api.ok("POST", f"/{orders}/messages/ack", {"acks": acks, "retries": [{"lease_id": leased[2]["lease_id"]}]})
        clock.advance(31)  # the last two leases expire (a second delivery each)
        again = api.ok("POST", f"/{orders}/messages/pull", {"batch_size": 5})["messages"]
        clock.advance(31)  # and again: their last delivery, so the dead-letter queue takes them
        answer = stats(emulator, "reader")  # read-only tokens may read it
        assert answer.status_code == 200 and answer.json()["success"] is True
        result = answer.json()["result"]
        assert result["version"] == 1
        by_name = {queue["queue_name"]: queue for queue in result["queues"]}
        assert (
            by_name["orders"]
            == {
                "queue_id": orders,
                "queue_name": "orders",
                "pushed": 5,
                "delivered": 5 + len(again),
                "acked": 2,
                "retried": 1,
                "expired_leases": 2 + len(again),
                "dead_lettered": len(again),
                "dropped": 0,
                "purged": 0,
                "retention_expired": 0,
                "backlog": 0,  # the retried one came back at once (no delay) and went the same way
            }
            and len(again) == 3
        )
        assert by_name["orders-dlq"]["pushed"] == 0 and by_name["orders-dlq"]["backlog"] == 3
        assert emulator.stats() == result  # the same, in process


def test_the_stats_are_behind_the_token_check_and_change_nothing(clock: ManualClock) -> None:
    with CloudflareQueuesEmulator(clock=clock) as emulator:
        emulator.create_queue("orders")
        assert stats(emulator, "wrong-token").status_code in (400, 401, 403)
        before = emulator.stats()
        answer = requests.post(
            f"{emulator.base_url}/accounts/{emulator.account_id}/emulator/stats",
            headers={"Authorization": f"Bearer {emulator.token}"},
            timeout=10,
        )
        assert answer.status_code == 405 and emulator.stats() == before
