"""The shared stream's settlement decisions and the watchers' field filters: pure logic, no triggerer."""

from __future__ import annotations

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.message_filter import parse_field_filter
from airflow_provider_cfqueues.api.models import AckResult, PulledMessage
from airflow_provider_cfqueues.consume.attempts import ConsumerDelay, FixedDelay, resolve_message_retry_delay
from airflow_provider_cfqueues.consume.fate import (
    Action,
    Resolution,
    Settlement,
    check_lease_outlasts_ack_window,
    give_back,
    minimum_lease_seconds,
    plan_advance,
    resolve_batch,
    run_sync,
    settle,
)

BACKOFF = resolve_message_retry_delay(None)
NOT_STORED = "its asset event may not have been stored"
UNWANTED = "no watcher of the queue wanted it (on_rejected='poison')"


def ACKED(acks: object, retries: object) -> AckResult:
    return AckResult()


def backoff(message: PulledMessage, error: str) -> tuple[PulledMessage, int | None]:
    return message, BACKOFF.seconds(message.attempts)


def message(n: int, attempts: int = 1) -> PulledMessage:
    return PulledMessage(id=f"m{n}", lease_id=f"l{n}", attempts=attempts, content_type="text", raw_body="x")


@pytest.mark.parametrize(
    ("resolution", "on_rejected", "expected"),
    [
        # every watcher that was online stored its event: ack
        (Resolution(acked=2), "retry", Settlement(Action.ACK, None, "stored")),
        # one watcher wanted it, the other's filter did not: ack (the rejection is that watcher's choice)
        (Resolution(acked=1, rejected=1), "poison", Settlement(Action.ACK, None, "stored")),
        # one watcher failed (ack timeout): its event may be missing, so the message must come again
        (Resolution(acked=1, failed=1), "retry", Settlement(Action.RETRY, 30, NOT_STORED)),
        (
            Resolution(failed=1, rejected=1),
            "poison",
            Settlement(Action.RETRY, 30, NOT_STORED),
        ),
        # nobody wanted it: as on_rejected says
        (Resolution(rejected=2), "retry", Settlement(Action.RETRY, 30, "no watcher wanted it")),
        (Resolution(rejected=1), "poison", Settlement(Action.POISON, None, UNWANTED)),
        (
            Resolution(rejected=1),
            "dead_letter",
            Settlement(Action.RETRY, 0, "no watcher wanted it: on its way to the dead-letter queue"),
        ),
        # broadcast while no watcher was subscribed: given back at once, never acked
        (Resolution(), "poison", Settlement(Action.RETRY, 0, "no watcher was subscribed")),
    ],
)
def test_settlement_of_each_outcome(resolution: Resolution, on_rejected: str, expected: Settlement) -> None:
    assert settle(resolution, 1, on_rejected, BACKOFF) == expected


@pytest.mark.parametrize(
    ("failed", "everyone_saw", "taken", "expected"),
    [
        # watchers fired what they wanted and their events were stored: the rest was nobody's
        (False, True, {"a", "c"}, [Resolution(acked=1), Resolution(rejected=1), Resolution(acked=1)]),
        # a watcher's event was not confirmed stored: every message of the batch comes again, taken or not
        (True, True, {"a"}, [Resolution(failed=1)] * 3),
        # every watcher saw it and wanted none of it
        (False, True, set(), [Resolution(rejected=1)] * 3),
        # a watcher left before it saw the batch: nobody can say the untaken ones were unwanted
        (False, False, {"b"}, [Resolution(), Resolution(acked=1), Resolution()]),
    ],
)
def test_a_batch_resolves_per_message(
    failed: bool, everyone_saw: bool, taken: set[str], expected: list[Resolution]
) -> None:
    assert resolve_batch(["a", "b", "c"], failed=failed, everyone_saw=everyone_saw, taken=taken) == expected


def test_delays_follow_the_attempts_and_the_users_retry_delay() -> None:
    failed, rejected = Resolution(failed=1), Resolution(rejected=1)
    assert [settle(failed, n, "retry", BACKOFF).delay for n in (1, 2, 3, 8)] == [30, 60, 120, 3600]
    assert settle(rejected, 3, "retry", FixedDelay(45)).delay == 45
    assert settle(rejected, 3, "retry", ConsumerDelay()).delay is None  # the consumer's retry_delay
    assert settle(rejected, 3, "dead_letter", FixedDelay(45)).delay == 0  # spend the deliveries at once


def test_a_plan_groups_the_actions_for_one_request() -> None:
    items = [
        (message(1), Resolution(acked=1)),
        (message(2), Resolution(rejected=2)),
        (message(3, attempts=2), Resolution(failed=1)),
        (message(4), Resolution()),
        (message(5), Resolution(acked=1, rejected=1)),
    ]
    plan = plan_advance(items, "poison", BACKOFF)
    assert [m.id for m in plan.acks] == ["m1", "m5"]
    assert [(m.id, why) for m, why in plan.poison] == [("m2", UNWANTED)]
    assert [(m.id, d) for m, d in plan.retries] == [("m3", 60), ("m4", 0)]
    assert plan.describe() == (
        f"2 ack (stored), 1 poison ({UNWANTED}), 1 retry (its asset event may not have been stored), "
        "1 retry (no watcher was subscribed)"
    )
    # the loop gives the plan back as the drain does: route the poison, then one ack request
    routed = run_sync(give_back(plan.acks, plan.retries, plan.poison, backoff), lambda poison: {}, ACKED)
    assert [m.id for m in routed.acks] == ["m1", "m5", "m2"]

    unrouted = plan_advance([(message(6, attempts=3), Resolution(rejected=1))], "poison", BACKOFF)
    push_failed = give_back(unrouted.acks, unrouted.retries, unrouted.poison, backoff)
    done = run_sync(push_failed, lambda poison: {"l6": "routing to unrouted failed: 503"}, ACKED)
    assert [(m.id, d) for m, d in done.retries] == [("m6", 120)] and done.acks == []  # routed when it comes again


def test_the_lease_must_outlast_the_ack_window() -> None:
    assert minimum_lease_seconds(300) == pytest.approx(390)
    check_lease_outlasts_ack_window(600, 300)
    with pytest.raises(CloudflareQueuesValidationError) as caught:
        check_lease_outlasts_ack_window(120, 300)
    assert "visibility_timeout=120 s" in str(caught.value)
    assert "shared_stream_ack_timeout=300 s" in str(caught.value) and "at least 390 s" in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "body", "wanted"),
    [
        ({"field": "kind", "equals": "refund"}, {"kind": "refund"}, True),
        ({"field": "kind", "equals": "refund"}, {"kind": "order"}, False),
        ({"field": "kind", "equals": "refund"}, "refund", False),  # a text body has no fields
        ({"field": "kind", "equals": None}, {}, False),  # a missing field is not null
        ({"field": "order.country", "in": ["DE", "FR"]}, {"order": {"country": "FR"}}, True),
        ({"field": "order.country", "in": ["DE", "FR"]}, {"order": "FR"}, False),
        ({"field": "priority", "exists": True}, {"priority": 0}, True),
        ({"field": "priority", "exists": False}, {"other": 1}, True),
        ({"field": "priority", "exists": False}, None, True),
    ],
)
def test_field_filters(spec: dict[str, object], body: object, wanted: bool) -> None:
    assert parse_field_filter(spec).matches({"id": "m", "body": body}) is wanted


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("kind", "must be a dict"),
        ({"equals": "x"}, "needs a 'field'"),
        ({"field": "a..b", "equals": "x"}, "needs a 'field'"),
        ({"field": "kind"}, "takes one of equals, in, exists"),
        ({"field": "kind", "equals": 1, "in": [1]}, "takes one of"),
        ({"field": "kind", "equal": 1}, r"\(unknown: equal\)"),
        ({"field": "kind", "in": []}, "non-empty list"),
        ({"field": "kind", "exists": "yes"}, "True or False"),
    ],
)
def test_bad_filters_are_refused_with_the_forms(spec: object, says: str) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match=says):
        parse_field_filter(spec)
