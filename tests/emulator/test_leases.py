"""Lease semantics: exclusive leases, expiry and redelivery, ack warnings and counts."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock

from ..raw_api import RawApi

pytestmark = pytest.mark.airflow_agnostic  # the emulator alone: run in the Airflow 3 suite only


@pytest.fixture
def api(emulator: CloudflareQueuesEmulator) -> RawApi:
    return RawApi(emulator)


def test_pull_leases_up_to_batch_size(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q")
    api.batch(queue.id, [{"body": f"m{i}", "content_type": "text"} for i in range(7)])

    first = api.pull(queue.id, batch_size=5)
    second = api.pull(queue.id, batch_size=5)
    third = api.pull(queue.id, batch_size=5)

    assert [len(r["messages"]) for r in (first, second, third)] == [5, 2, 0]
    assert first["message_backlog_count"] == 7  # leased messages are still unacknowledged
    bodies = [m["body"] for r in (first, second) for m in r["messages"]]
    assert sorted(bodies) == sorted(f"m{i}" for i in range(7))
    assert all(m["attempts"] == 1 for r in (first, second) for m in r["messages"])
    assert {m["state"] for m in [v.__dict__ for v in emulator.messages("q")]} == {"leased"}


def test_pull_defaults_come_from_the_consumer(
    emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock
) -> None:
    queue = emulator.create_queue("q", batch_size=3, visibility_timeout_ms=2_000)
    api.batch(queue.id, [{"body": i} for i in range(10)])
    assert len(api.pull(queue.id)["messages"]) == 3
    clock.advance(2.0)
    assert len(api.pull(queue.id)["messages"]) == 3  # the first 3 are back plus none new leased twice
    assert emulator.metrics("q")["backlog_count"] == 10


def test_concurrent_pulls_never_get_the_same_message(emulator: CloudflareQueuesEmulator) -> None:
    queue = emulator.create_queue("q")
    api = RawApi(emulator)
    for start in range(0, 600, 100):
        api.batch(queue.id, [{"body": n} for n in range(start, start + 100)])
    seen: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        client = RawApi(emulator)
        while True:
            messages = client.pull(queue.id, batch_size=7)["messages"]
            if not messages:
                return
            with lock:
                seen.extend(m["id"] for m in messages)

    threads = [threading.Thread(target=drain) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 600
    assert len(set(seen)) == 600


def test_expired_lease_redelivers_with_attempts_plus_one(
    emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock
) -> None:
    queue = emulator.create_queue("q")
    api.push(queue.id, {"n": 1})
    first = api.pull(queue.id, visibility_timeout_ms=10_000)["messages"][0]

    clock.advance(9.999)
    assert api.pull(queue.id)["messages"] == []  # still leased
    clock.advance(0.001)
    second = api.pull(queue.id, visibility_timeout_ms=10_000)["messages"][0]

    assert second["id"] == first["id"]
    assert second["attempts"] == first["attempts"] + 1 == 2
    assert second["lease_id"] != first["lease_id"]


def test_late_duplicate_and_unknown_lease_ids_are_warnings(
    emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock
) -> None:
    queue = emulator.create_queue("q")
    api.batch(queue.id, [{"body": i} for i in range(3)])
    leases = [m["lease_id"] for m in api.pull(queue.id, batch_size=3, visibility_timeout_ms=1_000)["messages"]]

    clock.advance(1.5)  # all three leases expired, nobody pulled again
    result = api.ack(queue.id, acks=[leases[0], leases[0], "not-a-lease"], retries=[leases[1]])

    assert result["ackCount"] == 1  # the late ack still deletes the message
    assert result["retryCount"] == 0  # the late retry changes nothing: the message is already back
    assert set(result["warnings"]) == {leases[0], "not-a-lease", leases[1]}
    assert "expired" in result["warnings"][leases[1]]
    assert "unknown" in result["warnings"]["not-a-lease"]
    assert emulator.metrics("q")["backlog_count"] == 2


def test_ack_after_redelivery_to_someone_else(
    emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock
) -> None:
    queue = emulator.create_queue("q")
    api.push(queue.id, "x", content_type="text")
    old = api.pull(queue.id, visibility_timeout_ms=1_000)["messages"][0]["lease_id"]
    clock.advance(1)
    new = api.pull(queue.id)["messages"][0]["lease_id"]

    late = api.ack(queue.id, acks=[old])
    assert late["ackCount"] == 1 and "expired" in late["warnings"][old]
    current = api.ack(queue.id, acks=[new])
    assert current["ackCount"] == 0
    assert "no longer in the queue" in current["warnings"][new]
    assert emulator.metrics("q")["backlog_count"] == 0


def test_duplicate_ack_is_reported_and_not_counted(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q")
    api.push(queue.id, [1, 2])
    lease = api.pull(queue.id)["messages"][0]["lease_id"]
    assert api.ack(queue.id, acks=[lease]) == {"ackCount": 1, "retryCount": 0, "warnings": {}}
    again = api.ack(queue.id, acks=[lease], retries=[lease])
    assert again["ackCount"] == 0 and again["retryCount"] == 0
    assert "already acked" in again["warnings"][lease]


def test_lease_ids_are_opaque_and_unguessable(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q")
    for _ in range(5):
        api.batch(queue.id, [{"body": i} for i in range(100)])
    leases = [m["lease_id"] for _ in range(5) for m in api.pull(queue.id, batch_size=100)["messages"]]
    assert len(set(leases)) == 500
    assert all(lease.count(".") == 4 and len(lease) > 100 for lease in leases)
    # a lease of another queue is unknown here
    other = emulator.create_queue("other")
    assert "unknown" in api.ack(other.id, acks=[leases[0]])["warnings"][leases[0]]


def test_the_system_clock_can_skip_ahead() -> None:
    from airflow_provider_cfqueues.emulator import SystemClock

    with CloudflareQueuesEmulator(clock=SystemClock()) as emulator:
        queue = emulator.create_queue("q", visibility_timeout_ms=60_000)
        api = RawApi(emulator)
        api.batch(queue.id, [{"body": "m", "content_type": "text"}])
        assert len(api.pull(queue.id)["messages"]) == 1
        assert api.pull(queue.id)["messages"] == []  # leased for a minute of real time
        emulator.clock.advance(61)  # type: ignore[attr-defined]
        assert [m["attempts"] for m in api.pull(queue.id)["messages"]] == [2]
    with pytest.raises(ValueError, match="forward"):
        SystemClock().advance(-1)
