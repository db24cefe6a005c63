"""The drain's decision for one message: a table, one row per rule (no emulator, no threads, no clock)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.consume.attempts import DEFAULT_BACKOFF, AttemptBudget, ConsumerDelay, FixedDelay
from airflow_provider_cfqueues.consume.fate import (
    PULLED,
    REPORTED_FAILED,
    SUCCEEDED,
    Action,
    BatchResultError,
    Breaker,
    Decision,
    Delivery,
    DrainPolicy,
    Fate,
    Outcome,
    batch_failures,
)
from airflow_provider_cfqueues.consume.poison import Rejected

#: max_retries=3: four deliveries
BUDGET = AttemptBudget(max_retries=3, retry_delay=20)
WITH_DLQ = AttemptBudget(max_retries=3, retry_delay=20, dead_letter_queue="orders-dlq")
PLAIN = DrainPolicy(BUDGET, DEFAULT_BACKOFF)
DLQ = DrainPolicy(WITH_DLQ, DEFAULT_BACKOFF)
POISON_AT_2 = DrainPolicy(BUDGET, DEFAULT_BACKOFF, poison_limit=2)
FIXED = DrainPolicy(BUDGET, FixedDelay(5))
CONSUMER = DrainPolicy(BUDGET, ConsumerDelay())
FAILED = Outcome.failed("ValueError: bad row")

# policy, attempts, failed earlier in this run, outcome -> action, delay, fate, breaker, words in the log
TABLE: list[tuple[str, DrainPolicy, int, bool, Outcome, Action, Any, Fate | None, Breaker, str]] = [
    ("new message", PLAIN, 1, False, PULLED, Action.PROCESS, None, None, Breaker.NEUTRAL, ""),
    ("came back in this run", PLAIN, 2, True, PULLED, Action.HOLD, 60, None, Breaker.NEUTRAL, ""),
    ("came back on its last delivery", PLAIN, 4, True, PULLED, Action.PROCESS, None, None, Breaker.NEUTRAL, ""),
    ("over the poison limit", POISON_AT_2, 3, False, PULLED, Action.POISON, None, None, Breaker.NEUTRAL, "routed"),
    ("at the poison limit", POISON_AT_2, 2, False, PULLED, Action.PROCESS, None, None, Breaker.NEUTRAL, ""),
    ("succeeded", PLAIN, 1, False, SUCCEEDED, Action.ACK, None, None, Breaker.RESETS, ""),
    ("succeeded late", PLAIN, 4, False, SUCCEEDED, Action.ACK, None, None, Breaker.RESETS, ""),
    (
        "first failure",
        PLAIN,
        1,
        False,
        FAILED,
        Action.RETRY,
        30,
        Fate.COMES_BACK,
        Breaker.COUNTS,
        "comes back in 30 s (3 deliveries left)",
    ),
    (
        "fails again: a poison suspect",
        PLAIN,
        2,
        False,
        FAILED,
        Action.RETRY,
        60,
        Fate.COMES_BACK,
        Breaker.NEUTRAL,
        "attempt 2 of 4",
    ),
    (
        "last delivery, no DLQ",
        PLAIN,
        4,
        False,
        FAILED,
        Action.RETRY,
        None,
        Fate.DELETED,
        Breaker.NEUTRAL,
        "the service deletes it",
    ),
    (
        "last delivery, DLQ",
        DLQ,
        4,
        False,
        FAILED,
        Action.RETRY,
        None,
        Fate.DEAD_LETTERED,
        Breaker.NEUTRAL,
        "'orders-dlq'",
    ),
    (
        "first delivery is the last (max_retries=0)",
        DrainPolicy(AttemptBudget(max_retries=0), DEFAULT_BACKOFF),
        1,
        False,
        FAILED,
        Action.RETRY,
        None,
        Fate.DELETED,
        Breaker.COUNTS,
        "last delivery",
    ),
    ("fixed delay", FIXED, 3, False, FAILED, Action.RETRY, 5, Fate.COMES_BACK, Breaker.NEUTRAL, "in 5 s"),
    (
        "the consumer's delay",
        CONSUMER,
        1,
        False,
        FAILED,
        Action.RETRY,
        None,
        Fate.COMES_BACK,
        Breaker.COUNTS,
        "after the consumer's retry_delay",
    ),
    (
        "fails at the poison limit",
        POISON_AT_2,
        2,
        False,
        FAILED,
        Action.POISON,
        None,
        None,
        Breaker.NEUTRAL,
        "last error: ValueError: bad row",
    ),
    (
        "fails before the poison limit",
        POISON_AT_2,
        1,
        False,
        FAILED,
        Action.RETRY,
        30,
        Fate.COMES_BACK,
        Breaker.COUNTS,
        "comes back",
    ),
    (
        "routing to poison failed",
        POISON_AT_2,
        2,
        False,
        Outcome.routing_failed("on_poison failed: OSError: down"),
        Action.RETRY,
        60,
        Fate.COMES_BACK,
        Breaker.NEUTRAL,
        "on_poison failed",
    ),
    (
        "rejected on its first delivery",
        DLQ,
        1,
        False,
        Outcome.rejected("not JSON"),
        Action.POISON,
        None,
        None,
        Breaker.NEUTRAL,
        "rejected message m1 on delivery 1 (not JSON): routed as poison at once",
    ),
    (
        "rejected before the poison limit",
        POISON_AT_2,
        1,
        False,
        Outcome.rejected("unknown schema"),
        Action.POISON,
        None,
        None,
        Breaker.NEUTRAL,
        "routed as poison at once",
    ),
    (
        "no time left",
        PLAIN,
        2,
        False,
        Outcome.unprocessed("their leases expire in 1.0 s"),
        Action.RELEASE,
        0,
        None,
        Breaker.NEUTRAL,
        "",
    ),
    (
        "no time left, breaker tripped",
        PLAIN,
        2,
        False,
        Outcome.unprocessed("the drain is stopping", breaker_tripped=True),
        Action.RELEASE,
        60,
        None,
        Breaker.NEUTRAL,
        "",
    ),
    (
        "no time left on the last delivery",
        PLAIN,
        4,
        False,
        Outcome.unprocessed("their leases expire in 1.0 s"),
        Action.PROCESS,
        None,
        None,
        Breaker.NEUTRAL,
        "on its last delivery although their leases expire",
    ),
]


@pytest.mark.parametrize(
    ("policy", "attempts", "failed_earlier", "outcome", "action", "delay", "fate", "breaker", "words"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decision(
    policy: DrainPolicy,
    attempts: int,
    failed_earlier: bool,
    outcome: Outcome,
    action: Action,
    delay: Any,
    fate: Fate | None,
    breaker: Breaker,
    words: str,
) -> None:
    decision = policy.decide(Delivery("m1", attempts, failed_earlier), outcome)
    assert (decision.action, decision.delay, decision.fate, decision.breaker) == (action, delay, fate, breaker)
    assert words in decision.log
    assert decision.is_failure == (action is Action.RETRY)
    if action is Action.RETRY:
        assert decision.level == logging.ERROR and decision.error in decision.log and "m1" in decision.log
    if action is Action.POISON:  # the poison envelope's reason, and whether process() rejected it
        assert decision.error and decision.rejected == (outcome.kind == "rejected")
        assert outcome.detail in decision.error


RETRY_IN_30 = PLAIN.decide(Delivery("m1", 1), FAILED)
LAST = PLAIN.decide(Delivery("m1", 4), FAILED)


@pytest.mark.parametrize(
    ("decision", "attempts", "seconds_left", "stopping", "action"),
    [
        (RETRY_IN_30, 1, 300.0, False, Action.HOLD),  # comes back before the lease would end: keep it
        (RETRY_IN_30, 1, 30.5, False, Action.RETRY),  # not with the safety margin
        (RETRY_IN_30, 1, 300.0, True, Action.RETRY),  # the run is stopping: give it back now
        (LAST, 4, 300.0, False, Action.RETRY),  # its last delivery: the service ends it now
        (PLAIN.decide(Delivery("m1", 1), SUCCEEDED), 1, 300.0, False, Action.ACK),
    ],
)
def test_settle_holds_retries_that_would_come_back_before_the_lease_ends(
    decision: Decision, attempts: int, seconds_left: float, stopping: bool, action: Action
) -> None:
    settled = PLAIN.settle(decision, Delivery("m1", attempts), seconds_left, stopping=stopping)
    assert settled.action is action
    if action is Action.HOLD:
        assert settled.delay == decision.delay


def test_holding_uses_what_the_message_will_really_wait() -> None:
    """With the consumer's delay (20 s here), a retry sends no delay but still waits 20 s."""
    retry = CONSUMER.decide(Delivery("m1", 1), FAILED)
    assert CONSUMER.settle(retry, Delivery("m1", 1), 25.0, stopping=False).action is Action.HOLD
    assert CONSUMER.settle(retry, Delivery("m1", 1), 20.5, stopping=False).action is Action.RETRY


def test_an_unknown_outcome_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        PLAIN.decide(Delivery("m1", 1), Outcome("exploded"))


BATCH = [
    PulledMessage(id=f"id{n}", lease_id=f"lease{n}", attempts=1, content_type="text", raw_body=str(n)) for n in range(3)
]


@pytest.mark.parametrize(
    ("returned", "failed"),
    [
        (None, set()),
        ([], set()),
        ([BATCH[1]], {"id1"}),
        (["id0", "lease2"], {"id0", "id2"}),
        ({"id1"}, {"id1"}),
        ((m for m in BATCH), {"id0", "id1", "id2"}),
    ],
)
def test_what_a_batch_process_reported(returned: object, failed: set[str]) -> None:
    assert batch_failures(BATCH, returned) == dict.fromkeys(failed, REPORTED_FAILED)


def test_a_batch_rejects_some_messages_and_fails_others() -> None:
    returned = [Rejected(BATCH[0], "not JSON"), "id1", Rejected("lease2", "unknown schema")]
    assert batch_failures(BATCH, returned) == {
        "id0": Outcome.rejected("not JSON"),
        "id1": REPORTED_FAILED,
        "id2": Outcome.rejected("unknown schema"),
    }


@pytest.mark.parametrize(
    ("returned", "words"),
    [
        ("id0", "got str"),  # a bare string is not a collection of failures
        (BATCH[0], "got PulledMessage"),
        (Rejected(BATCH[0], "bad"), "got Rejected"),  # one rejection is returned in a collection
        ([Rejected("id9", "bad")], "not messages of this batch: Rejected"),
        ({"id": "id0"}, "got dict"),
        (3, "got int"),
        ([0, 2], "2 failure(s) that are not messages of this batch: int 0, int 2"),
        (["id9"], "not messages of this batch: str 'id9'"),
    ],
)
def test_a_batch_result_it_cannot_match_acks_nothing(returned: object, words: str) -> None:
    with pytest.raises(BatchResultError, match=re.escape(words)):
        batch_failures(BATCH, returned)
