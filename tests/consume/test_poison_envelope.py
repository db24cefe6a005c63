"""The poison envelope: every content type round-trips, the reason is cut to fit, other bodies are refused."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.limits import MAX_BODY_BYTES
from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.api.push_packing import prepare_message
from airflow_provider_cfqueues.consume.poison import ENVELOPE_KEY, MAX_REASON_CHARS, PoisonEnvelope

ROUTED_AT = datetime(2026, 12, 7, 3, 0, 5, tzinfo=timezone.utc)


def pulled(raw_body: str, content_type: str) -> PulledMessage:
    return PulledMessage(
        id="m1", lease_id="l1", attempts=3, timestamp_ms=1_796_612_400_000, content_type=content_type, raw_body=raw_body
    )


def wrap(message: PulledMessage, reason: str = "bad") -> dict[str, Any]:
    copy = PoisonEnvelope.wrap(
        message, reason=reason, queue="orders", queue_id="qid", routed_by={"task_id": "t"}, routed_at=ROUTED_AT
    )
    prepare_message(0, copy)  # what the push validates: it fits, and it is JSON
    assert copy.content_type == "json"
    return copy.body  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("raw_body", "content_type", "key", "value"),
    [
        (base64.b64encode(b'{"order": 7}').decode(), "json", "body", {"order": 7}),
        ('{"order": 7}', "json", "body", {"order": 7}),  # JSON text, as the service also sends
        ("héllo\nworld", "text", "body", "héllo\nworld"),
        (base64.b64encode(b"\x00\xff").decode(), "bytes", "raw_body", base64.b64encode(b"\x00\xff").decode()),
        ("AAEC", "v8", "raw_body", "AAEC"),
        ("not base64 of JSON", "json", "raw_body", "not base64 of JSON"),  # did not decode: kept as delivered
    ],
)
def test_each_content_type_travels_in_the_envelope(raw_body: str, content_type: str, key: str, value: Any) -> None:
    body = wrap(pulled(raw_body, content_type))
    assert body[ENVELOPE_KEY] == 1 and body[key] == value
    assert not ({"body", "raw_body"} - {key}) & body.keys()
    envelope = PoisonEnvelope.read(json.loads(json.dumps(body)))  # as a consumer of the poison queue reads it
    assert envelope.source == {
        "queue": "orders",
        "queue_id": "qid",
        "message_id": "m1",
        "attempts": 3,
        "published_at": "2026-12-07T03:00:00Z",
        "content_type": content_type,
    }
    assert (envelope.reason, envelope.routed_at) == ("bad", "2026-12-07T03:00:05Z")
    assert envelope.routed_by == {"task_id": "t"}
    if key == "body":
        original = envelope.original()
        assert (original.body, original.content_type) == (value, content_type)
    else:
        with pytest.raises(CloudflareQueuesValidationError, match="cannot push: its raw_body"):
            envelope.original()


def test_a_long_reason_is_cut_and_says_so() -> None:
    body = wrap(pulled("x", "text"), reason="E" * 10_000)
    assert len(body["reason"]) == MAX_REASON_CHARS and body["reason"].endswith(" [truncated]")


def test_a_reason_is_cut_further_to_fit_a_large_body() -> None:
    size = MAX_BODY_BYTES - 1_500
    body = wrap(pulled("x" * size, "text"), reason="E" * MAX_REASON_CHARS)
    assert body["body"] == "x" * size and body["reason"].endswith(" [truncated]")
    assert len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()) <= MAX_BODY_BYTES


def test_a_body_that_leaves_no_room_for_the_envelope_is_refused() -> None:
    with pytest.raises(CloudflareQueuesValidationError, match=r"envelope of message m1 would be .* over the"):
        wrap(pulled("x" * (MAX_BODY_BYTES - 100), "text"))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"order": 7}, "not a poison envelope"),  # a copy routed before envelopes existed
        ("text", "not a poison envelope"),
        ({ENVELOPE_KEY: 2, "reason": "x"}, "version 2; this provider reads up to 1"),
        ({ENVELOPE_KEY: "1"}, "version '1'"),
    ],
)
def test_other_bodies_are_not_read_as_envelopes(body: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        PoisonEnvelope.read(body)


def test_keys_a_later_minor_change_adds_are_kept() -> None:
    body = {**wrap(pulled("x", "text")), "trace_id": "abc"}
    assert PoisonEnvelope.read(body).extra == {"trace_id": "abc"}
