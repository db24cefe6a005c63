"""Pulls: defaults and limits, body encodings per content type, leases and their expiry."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import pytest

from .target import Target, redelivered


def test_pull_defaults_and_limits(contract: Target) -> None:
    queue = contract.queue("pull")
    contract.hook.push_messages([f"m{i}" for i in range(7)], queue=queue.id)
    answer = contract.ok("POST", f"/{queue.id}/messages/pull", {})
    contract.expect_that(
        "pull {} returns",
        "an empty pull body takes the consumer's batch_size (5 by default): at most 5",
        len(answer["messages"]),
        1 <= len(answer["messages"]) <= 5,
    )
    contract.observe("pull {} count", "exactly 5 of the 7 in one pull?", len(answer["messages"]), 5)
    contract.expect_that(
        "message_backlog_count",
        "a pull answer carries message_backlog_count",
        answer.get("message_backlog_count"),
        isinstance(answer.get("message_backlog_count"), int),
    )
    contract.observe(
        "message_backlog_count after leasing 5 of 7",
        "do leased messages count as backlog?",
        answer["message_backlog_count"],
        7,
    )
    contract.expect(
        "first delivery attempts",
        "attempts counts deliveries: 1 on the first",
        [1] * len(answer["messages"]),
        [message["attempts"] for message in answer["messages"]],
    )
    over_batch = contract.call("POST", f"/{queue.id}/messages/pull", {"batch_size": 101})
    contract.observe(
        "batch_size 101 answer",
        "batch_size is at most 100: refused, or clamped? (status, code)",
        [over_batch.status, over_batch.error_code],
        [400, 10207],
    )
    _give_back(contract, queue, over_batch)
    over_lease = contract.call("POST", f"/{queue.id}/messages/pull", {"visibility_timeout_ms": 43_200_001})
    contract.observe(
        "visibility_timeout_ms 43,200,001 answer",
        "leases are at most 12 h: refused, or clamped? (status, code)",
        [over_lease.status, over_lease.error_code],
        [400, 10207],
    )
    _give_back(contract, queue, over_lease)
    rest = contract.collect(queue, 2)
    contract.expect("the other 2", "the unleased messages are still delivered", 2, len(rest))
    acked = contract.ack(queue, [message["lease_id"] for message in answer["messages"] + rest])
    contract.expect("ackCount", "ackCount counts the acknowledged leases", 7, acked["ackCount"])


def _encoding(message: dict[str, Any]) -> str:
    try:
        json.loads(base64.b64decode(message["body"], validate=True))
        return "base64"
    except (binascii.Error, ValueError):
        return "plain"


def test_bodies_by_content_type(contract: Target) -> None:
    queue = contract.queue("bodies")
    bodies = ["héllo ✓", {"order": 7, "items": ["ü", 2.5, None]}]
    contract.hook.push_messages(bodies, queue=queue.id)  # the hook picks text for str, json for the dict
    leased = sorted(contract.collect(queue, 2), key=lambda message: message["metadata"]["CF-Content-Type"])
    types = [message["metadata"]["CF-Content-Type"] for message in leased]
    contract.expect("CF-Content-Type", "metadata names the content type", ["json", "text"], types)
    contract.expect("text body", "a text body comes back as the plain string", bodies[0], leased[1]["body"])
    contract.observe(
        "json body encoding",
        "base64 of the JSON text (docs) or the JSON text (docs' example, third-party reports)",
        _encoding(leased[0]),
        contract.emulator_reading.get("json_bodies"),
    )
    contract.ack(queue, [message["lease_id"] for message in leased])
    contract.hook.push_messages(bodies, queue=queue.id)
    pulled = contract.hook_collect(queue, 2)
    contract.expect(
        "bodies through the hook",
        "the hook gives back the bodies pushed, whatever the encoding",
        sorted(map(json.dumps, bodies)),
        sorted(json.dumps(message.body) for message in pulled),
    )
    contract.hook.ack_messages(queue=queue.id, acks=pulled)


def test_leases_are_exclusive_and_expire(contract: Target) -> None:
    queue = contract.queue("leases")
    contract.hook.push_messages([f"m{i}" for i in range(6)], queue=queue.id)
    first = contract.collect(queue, 3, visibility_timeout_ms=2_000)
    leased_at = contract.now()
    second = contract.collect(queue, 3)
    contract.expect(
        "concurrent pulls",
        "pulls never lease the same message twice",
        6,
        len({message["id"] for message in first + second}),
    )
    contract.ack(queue, [message["lease_id"] for message in second])
    contract.expect("while leased", "a leased message is not delivered again", [], contract.pull(queue))
    contract.wait_until(leased_at + 3.5)
    again = contract.collect(queue, 3)
    contract.expect(
        "after expiry",
        "an unacked message is delivered again once its lease expires",
        {"again": 3, "others": 0},
        redelivered(first, again),
    )
    contract.expect(
        "attempts after expiry",
        "the redelivery counts a second attempt",
        [2, 2, 2],
        [message["attempts"] for message in again],
    )
    contract.expect_that(
        "new lease ids",
        "the redelivery has new lease ids",
        "differ",
        not {m["lease_id"] for m in first} & {m["lease_id"] for m in again},
    )
    late = contract.call("POST", f"/{queue.id}/messages/ack", {"acks": [{"lease_id": first[0]["lease_id"]}]})
    contract.expect("late ack", "an ack after the lease expired is accepted (no error)", 200, late.status)
    result = late.payload.get("result") or {}
    contract.observe(
        "late ack result",
        "does a late ack delete the message, and is it warned? (ackCount, warned)",
        [result.get("ackCount"), bool(result.get("warnings"))],
        [1, True],
    )
    unknown = contract.call("POST", f"/{queue.id}/messages/ack", {"acks": [{"lease_id": "not-a-lease"}]})
    warnings = (unknown.payload.get("result") or {}).get("warnings") or {}
    contract.observe(
        "unknown lease id",
        "an unknown lease id: 200 with a warning keyed by it? (status, warned lease ids)",
        [unknown.status, sorted(warnings) if isinstance(warnings, dict) else warnings],
        [200, ["not-a-lease"]],
    )
    contract.ack(queue, [message["lease_id"] for message in again])
    metrics = contract.settled_metrics(queue, 0)
    contract.expect("backlog after acks", "acknowledged messages are deleted", 0, metrics["backlog_count"])


@pytest.mark.contract_waits
def test_default_visibility_timeout(contract: Target) -> None:
    queue = contract.queue("default-lease")
    contract.hook.push_message("m", queue=queue.id)
    [message] = contract.collect(queue, 1)  # the consumer's default: 30 s
    leased_at = contract.now()
    contract.wait_until(leased_at + 25)
    contract.expect("after 25 s", "the default lease is 30 s: not delivered again yet", [], contract.pull(queue))
    contract.wait_until(leased_at + 32)
    again = contract.collect(queue, 1)
    contract.expect(
        "after 32 s",
        "delivered again once the 30 s lease expired",
        {"again": 1, "others": 0},
        redelivered([message], again),
    )
    contract.ack(queue, [m["lease_id"] for m in again])


def _give_back(contract: Target, queue: Any, answer: Any) -> None:
    """A pull the service clamped instead of refusing leased messages: give them back at once."""
    if answer.status == 200:
        leases = [m["lease_id"] for m in (answer.payload.get("result") or {}).get("messages") or []]
        if leases:
            contract.ack(queue, retries=[{"lease_id": lease, "delay_seconds": 0} for lease in leases])
