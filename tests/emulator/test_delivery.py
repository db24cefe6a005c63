"""Retries, dead-lettering, delays, retention, metrics and body encodings."""

from __future__ import annotations

import base64
import json
import re

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock

from ..raw_api import RawApi

pytestmark = pytest.mark.airflow_agnostic  # the emulator alone: run in the Airflow 3 suite only


@pytest.fixture
def api(emulator: CloudflareQueuesEmulator) -> RawApi:
    return RawApi(emulator)


def test_retry_returns_after_its_delay(emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock) -> None:
    queue = emulator.create_queue("q", retry_delay=30)
    api.batch(queue.id, [{"body": "a", "content_type": "text"}, {"body": "b", "content_type": "text"}])
    a, b = sorted(api.pull(queue.id, batch_size=2)["messages"], key=lambda m: m["body"])

    result = api.ack(queue.id, retries=[{"lease_id": a["lease_id"], "delay_seconds": 10}, b["lease_id"]])
    assert result == {"ackCount": 0, "retryCount": 2, "warnings": {}}

    clock.advance(9.9)
    assert api.pull(queue.id)["messages"] == []
    clock.advance(0.1)
    assert [m["body"] for m in api.pull(queue.id)["messages"]] == ["a"]  # its own delay
    clock.advance(20)
    again = api.pull(queue.id)["messages"]
    assert [(m["body"], m["attempts"]) for m in again] == [("b", 2)]  # the consumer's retry_delay


def test_retry_with_zero_delay_skips_the_consumer_default(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q", retry_delay=60)
    api.push(queue.id, {"k": 1})
    lease = api.pull(queue.id)["messages"][0]["lease_id"]
    api.ack(queue.id, retries=[{"lease_id": lease, "delay_seconds": 0}])
    assert len(api.pull(queue.id)["messages"]) == 1


def test_dead_letter_after_max_retries(emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock) -> None:
    """Boundary: max_retries=2 allows 3 deliveries; the failure of the 3rd dead-letters the message."""
    queue = emulator.create_queue("q", max_retries=2, dead_letter_queue="q-dlq")
    api.push(queue.id, {"order": 7})
    for attempt in (1, 2, 3):
        message = api.pull(queue.id)["messages"][0]
        assert message["attempts"] == attempt
        assert api.ack(queue.id, retries=[message["lease_id"]])["retryCount"] == 1

    assert api.pull(queue.id)["messages"] == []
    assert emulator.metrics("q")["backlog_count"] == 0
    dlq = emulator.queue("q-dlq")  # created on first use
    dlq_messages = emulator.messages("q-dlq")
    assert [m.id for m in dlq_messages] == [message["id"]]
    assert json.loads(base64.b64decode(dlq_messages[0].body)) == {"order": 7}
    assert dlq_messages[0].attempts == 0
    assert dlq.consumer is None


def test_expired_leases_count_towards_max_retries(
    emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock
) -> None:
    queue = emulator.create_queue("q", max_retries=1, dead_letter_queue="dlq", visibility_timeout_ms=1_000)
    api.push(queue.id, "x", content_type="text")
    api.pull(queue.id)
    clock.advance(1)
    assert api.pull(queue.id)["messages"][0]["attempts"] == 2
    clock.advance(1)
    # the second lease expired: the metrics see the message gone without any pull
    assert emulator.metrics("q")["backlog_count"] == 0
    assert emulator.metrics("dlq")["backlog_count"] == 1


def test_exhausted_message_without_dead_letter_queue_is_deleted(
    emulator: CloudflareQueuesEmulator, api: RawApi
) -> None:
    queue = emulator.create_queue("q", max_retries=0)
    api.push(queue.id, {"a": 1})
    lease = api.pull(queue.id)["messages"][0]["lease_id"]
    assert api.ack(queue.id, retries=[lease])["retryCount"] == 1
    assert api.metrics(queue.id)["backlog_count"] == 0
    assert [q["queue_name"] for q in api.ok("GET")] == ["q"]


def test_push_delays(emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock) -> None:
    queue = emulator.create_queue("q")
    api.push(queue.id, "single", content_type="text", delay_seconds=5)
    api.batch(
        queue.id,
        [
            {"body": "batch-default", "content_type": "text"},
            {"body": "override", "content_type": "text", "delay_seconds": 1},
        ],
        delay_seconds=10,
    )
    assert api.metrics(queue.id)["backlog_count"] == 3  # delayed messages are in the backlog
    assert api.pull(queue.id, batch_size=10)["messages"] == []
    clock.advance(1)
    assert [m["body"] for m in api.pull(queue.id, batch_size=10)["messages"]] == ["override"]
    clock.advance(4)
    assert [m["body"] for m in api.pull(queue.id, batch_size=10)["messages"]] == ["single"]
    clock.advance(5)
    assert [m["body"] for m in api.pull(queue.id, batch_size=10)["messages"]] == ["batch-default"]


def test_queue_delivery_delay_and_zero_override(
    emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock
) -> None:
    queue = emulator.create_queue("q", delivery_delay=60)
    api.push(queue.id, "delayed", content_type="text")
    api.push(queue.id, "now", content_type="text", delay_seconds=0)
    first = api.pull(queue.id, batch_size=10)["messages"]
    assert [m["body"] for m in first] == ["now"]
    api.ack(queue.id, acks=[first[0]["lease_id"]])
    clock.advance(60)
    assert [m["body"] for m in api.pull(queue.id, batch_size=10)["messages"]] == ["delayed"]


def test_retention_expiry(emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock) -> None:
    queue = emulator.create_queue("q", message_retention_period=60)
    api.push(queue.id, {"old": True})
    clock.advance(30)
    api.push(queue.id, {"old": False})
    clock.advance(30)
    metrics = api.metrics(queue.id)
    assert metrics["backlog_count"] == 1
    assert metrics["oldest_message_timestamp_ms"] == int((1_800_000_000.0 + 30) * 1000)
    clock.advance(30)
    assert api.metrics(queue.id) == {"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0}


def test_default_retention_is_four_days(emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock) -> None:
    queue = emulator.create_queue("q")
    assert api.ok("GET", f"/{queue.id}")["settings"]["message_retention_period"] == 345_600
    api.push(queue.id, 1)
    clock.advance(345_599)
    assert api.metrics(queue.id)["backlog_count"] == 1
    clock.advance(1)
    assert api.metrics(queue.id)["backlog_count"] == 0


def test_backlog_metrics_everywhere(emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock) -> None:
    queue = emulator.create_queue("q")
    pushed = api.push(queue.id, "héllo", content_type="text")  # 6 bytes in UTF-8
    assert pushed["metadata"]["metrics"] == {
        "backlog_count": 1,
        "backlog_bytes": 6,
        "oldest_message_timestamp_ms": 1_800_000_000_000,
    }
    clock.advance(2)
    batch = api.batch(queue.id, [{"body": {"a": 1}}, {"body": [1, 2, 3]}])
    assert batch["metadata"]["metrics"]["backlog_count"] == 3
    assert batch["metadata"]["metrics"]["backlog_bytes"] == 6 + len('{"a":1}') + len("[1,2,3]")
    pulled = api.pull(queue.id, batch_size=1)
    assert pulled["message_backlog_count"] == 3
    assert pulled["metadata"]["metrics"]["oldest_message_timestamp_ms"] == 1_800_000_000_000
    api.ack(queue.id, acks=[pulled["messages"][0]["lease_id"]])
    assert api.metrics(queue.id)["backlog_count"] == 2


def test_body_encodings_and_ids(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q")
    api.batch(
        queue.id,
        [
            {"body": "plain ✓", "content_type": "text"},
            {"body": {"nested": ["ü", 1.5, None]}, "content_type": "json"},
            {"body": 42},  # no content type means json
        ],
    )
    emulator.inject_message("q", b"\x00\xffraw", content_type="bytes")
    messages = api.pull(queue.id, batch_size=10)["messages"]
    by_type: dict[str, list[dict[str, object]]] = {}
    for message in messages:
        by_type.setdefault(message["metadata"]["CF-Content-Type"], []).append(message)
        assert re.fullmatch(r"[0-9a-f]{32}", message["id"])
        assert isinstance(message["timestamp_ms"], int)
    assert by_type["text"][0]["body"] == "plain ✓"
    decoded = sorted(json.dumps(json.loads(base64.b64decode(m["body"]))) for m in by_type["json"])
    assert decoded == sorted([json.dumps({"nested": ["ü", 1.5, None]}), "42"])
    assert base64.b64decode(by_type["bytes"][0]["body"]) == b"\x00\xffraw"


def test_queue_and_consumer_management(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    created = api.ok("POST", "", {"queue_name": "orders"})
    queue_id = created["queue_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", queue_id)
    assert created["consumers"] == [] and created["settings"]["delivery_paused"] is False
    assert api.error("POST", "", {"queue_name": "orders"})[:2] == (409, 11009)

    consumer = api.ok(
        "POST",
        f"/{queue_id}/consumers",
        {
            "type": "http_pull",
            "dead_letter_queue": "orders-dlq",
            "settings": {"batch_size": 50, "max_retries": 5, "retry_delay": 2, "visibility_timeout_ms": 60_000},
        },
    )
    assert consumer["settings"] == {
        "batch_size": 50,
        "max_retries": 5,
        "retry_delay": 2,
        "visibility_timeout_ms": 60_000,
    }
    assert api.ok("GET", f"/{queue_id}/consumers") == [consumer]
    assert api.ok("GET", f"/{queue_id}/consumers/{consumer['consumer_id']}") == consumer
    assert api.ok("GET", f"/{queue_id}")["consumers"] == [consumer]
    assert api.error("POST", f"/{queue_id}/consumers", {"type": "http_pull"})[:2] == (409, 11004)

    api.ok("DELETE", f"/{queue_id}/consumers/{consumer['consumer_id']}")
    assert api.error("POST", f"/{queue_id}/messages/pull", {})[0] == 405
    api.ok("PATCH", f"/{queue_id}", {"settings": {"delivery_paused": True}})
    assert api.ok("GET", f"/{queue_id}")["settings"]["delivery_paused"] is True
    api.ok("DELETE", f"/{queue_id}")
    assert api.error("GET", f"/{queue_id}")[:2] == (404, 10104)


def test_list_queues_paginates_and_filters_by_name(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    for i in range(25):
        emulator.create_queue(f"queue-{i:02d}", http_pull=False)
    status, page2 = api.call("GET", params={"page": 2, "per_page": 10})
    assert status == 200
    assert [q["queue_name"] for q in page2["result"]] == [f"queue-{i:02d}" for i in range(10, 20)]
    assert page2["result_info"] == {"count": 10, "page": 2, "per_page": 10, "total_count": 25, "total_pages": 3}
    _, named = api.call("GET", params={"name": "queue-07"})
    assert [q["queue_name"] for q in named["result"]] == ["queue-07"]
