"""Answer models: tolerant parsing and body decoding."""

from __future__ import annotations

import base64
import json

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesResponseError
from airflow_provider_cfqueues.api.models import (
    AckAnswer,
    PullAnswer,
    PulledMessage,
    PurgeStatus,
    Queue,
    WireMessage,
    decode_body,
)
from airflow_provider_cfqueues.api.operations import RawResponse, parse_response

from ..helpers import request_of


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        ("plain text ✓", "text", "plain text ✓"),
        (b64(json.dumps({"a": [1, "é"]}).encode()), "json", {"a": [1, "é"]}),
        ('{"a": 1}', "json", {"a": 1}),  # plain JSON, as the service also sends
        ("[1, 2]", "json", [1, 2]),
        ('"quoted"', "json", "quoted"),
        ("123", "json", 123),
        (b64(b"123"), "json", 123),
        ("true", "json", True),  # valid base64 too, but not base64 of JSON
        ("null", "json", None),
        (b64(b"\x00\xff\x10"), "bytes", b"\x00\xff\x10"),
    ],
)
def test_decode_body(raw: str, content_type: str, expected: object) -> None:
    assert decode_body(raw, content_type) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "content_type", "error"),
    [
        ("not json at all", "json", "neither base64 of JSON nor JSON text"),
        ("%%%", "bytes", "not valid base64"),
        ("AAEC", "v8", "cannot be decoded outside Cloudflare Workers"),
    ],
)
def test_undecodable_bodies_keep_the_raw_text(raw: str, content_type: str, error: str) -> None:
    body, message = decode_body(raw, content_type)
    assert body == raw
    assert message is not None and error in message


def test_pulled_message_from_wire() -> None:
    answer = PullAnswer.model_validate(
        {
            "messages": [
                {
                    "id": "a" * 32,
                    "lease_id": "L",
                    "body": b64(b'{"x":1}'),
                    "attempts": 2.0,
                    "metadata": {"CF-Content-Type": "json"},
                    "timestamp_ms": 1_800_000_000_123.0,
                    "future": "ignored",
                }
            ]
        }
    )
    message = PulledMessage.from_wire(answer.messages[0])
    assert message.body == {"x": 1} and message.attempts == 2 and message.timestamp_ms == 1_800_000_000_123
    assert message.published_at.isoformat() == "2027-01-15T08:00:00.123000+00:00"
    assert repr(message) == f"PulledMessage(id={'a' * 32!r}, attempts=2, content_type='json')"
    dumped = json.loads(json.dumps(message.to_xcom()))
    assert dumped["lease_id"] == "L" and dumped["body"] == {"x": 1} and dumped["decode_error"] is None
    assert dumped["published_at"] == "2027-01-15T08:00:00.123000Z" and "raw_body" not in dumped
    assert "lease_id" not in message.to_xcom(lease=False)
    assert PulledMessage.deserialize(json.loads(json.dumps(message.serialize())), 1) == message  # XCom's round trip
    with pytest.raises(AttributeError, match="read-only"):
        message.attempts = 5  # type: ignore[misc]


def test_pulled_messages_go_through_airflows_xcom_serialization() -> None:
    try:
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:  # Airflow 2.11
        from airflow.serialization.serde import deserialize, serialize

    message = PulledMessage(id="a" * 32, lease_id="L", attempts=1, content_type="text", raw_body="hello")
    assert deserialize(json.loads(json.dumps(serialize(message)))) == message


def test_bytes_bodies_are_standard_base64_in_xcom() -> None:
    raw = base64.b64encode(b"\xfb\xff\xfe").decode()  # "+//+": URL-safe base64 would say "-__-"
    message = PulledMessage(id="m", lease_id="l", content_type="bytes", raw_body=raw)
    assert message.body == b"\xfb\xff\xfe" and message.to_xcom()["body"] == raw


def test_missing_content_type_means_json() -> None:
    message = PulledMessage.from_wire(WireMessage(id="m", lease_id="l", body='{"k": 2}'))
    assert message.attempts == 0 and message.metadata == {}
    assert message.content_type == "json" and message.body == {"k": 2}


def test_ack_warnings_as_map_or_list() -> None:
    assert AckAnswer.model_validate({"ackCount": 1, "retryCount": 0, "warnings": {"l": "late"}}).warnings == {
        "l": "late"
    }
    old = AckAnswer.model_validate({"ackCount": 2.0, "retryCount": 1, "warnings": ["one", "two"]})
    assert old.ack_count == 2 and old.warnings == {"warning-0": "one", "warning-1": "two"}
    assert AckAnswer.model_validate({}).warnings == {}
    assert AckAnswer.model_validate({"warnings": None}).warnings == {}


def test_pull_answers_old_and_new() -> None:
    assert PullAnswer.model_validate([{"id": "m", "lease_id": "l"}]).messages[0]["id"] == "m"  # 2024: a bare list
    answer = PullAnswer.model_validate({"messages": [], "message_backlog_count": 3.0})
    assert answer.metadata is None and answer.message_backlog_count == 3


def test_queue_tolerates_unknown_fields() -> None:
    queue = Queue.model_validate(
        {
            "queue_id": "q",
            "queue_name": "n",
            "jurisdiction": "eu",
            "consumers": [
                {"type": "worker", "script_name": "s", "new": 1},
                {"type": "http_pull", "settings": {"batch_size": 10}},
            ],
        }
    )
    assert queue.http_pull_consumer is not None and queue.http_pull_consumer.settings.batch_size == 10


def _parse(operation: str, status: int, body: bytes, headers: dict[str, str] | None = None) -> object:
    return parse_response(request_of(operation), RawResponse(status, body, headers or {}))


def test_push_answers_without_metrics_are_fine() -> None:
    envelope = _parse("push", 200, b'{"success": true}')
    assert envelope.result is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("answer", "done"),
    [
        ({"started_at": "2026-12-02T10:00:00Z", "completed": True}, True),
        ({"started_at": "2026-12-02T10:00:00Z", "completed": False}, False),
        ({"started_at": "2026-12-02T10:00:00Z", "completed": "true"}, True),  # the SDKs type it as a string
        ({"started_at": "2026-12-02T10:00:00Z", "completed": "False"}, False),
        ({"started_at": "2026-12-02T10:00:00Z", "completed": "2026-12-02T10:00:05.120Z"}, True),  # when it ended
        ({"started_at": "2026-12-02T10:00:00Z", "complete": True}, True),  # wrangler's field
        ({"started_at": "2026-12-02T10:00:00Z", "completed": None}, False),  # still running
        ({"started_at": None, "completed": None}, False),  # no purge yet
    ],
)
def test_purge_status_is_read_in_every_shape(answer: dict[str, object], done: bool) -> None:
    assert PurgeStatus.model_validate(answer).done is done


@pytest.mark.parametrize("completed", [5, "soon", "", {"at": 1}, ["true"]])
def test_a_purge_status_it_cannot_read_is_an_error_naming_the_field(completed: object) -> None:
    with pytest.raises(CloudflareQueuesResponseError, match=r"purge status has completed=.*does not guess"):
        PurgeStatus.model_validate({"started_at": "x", "completed": completed}).done  # noqa: B018
