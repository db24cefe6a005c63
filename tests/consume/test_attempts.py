"""Delivery attempts (backoff, the consumer's budget) and what an ack answer says was applied: pure logic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from airflow_provider_cfqueues.api import flows
from airflow_provider_cfqueues.api.errors import CloudflareQueuesTransportError, CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.models import AckResult, Queue
from airflow_provider_cfqueues.api.operations import ApiRequest, RawResponse
from airflow_provider_cfqueues.api.retry import RetryPolicy
from airflow_provider_cfqueues.consume.attempts import (
    DEFAULT_BACKOFF,
    AttemptBudget,
    CallableDelay,
    ConsumerDelay,
    ExponentialBackoff,
    FixedDelay,
    resolve_message_retry_delay,
)

ACCOUNT = "a" * 32
QUEUE = "b" * 32


def test_the_default_backoff_doubles_per_attempt_up_to_an_hour() -> None:
    assert [DEFAULT_BACKOFF.seconds(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert DEFAULT_BACKOFF.seconds(0) == 30 and DEFAULT_BACKOFF.seconds(10_000) == 3600  # no overflow
    assert ExponentialBackoff(base=5, cap=20).seconds(4) == 20
    with pytest.raises(ValueError, match="base"):
        ExponentialBackoff(base=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cap"):
        ExponentialBackoff(base=60, cap=30)


def test_retry_delay_spellings_resolve_to_one_typed_value() -> None:
    budget = AttemptBudget(max_retries=2, retry_delay=45)
    assert resolve_message_retry_delay(None) is DEFAULT_BACKOFF
    consumer = resolve_message_retry_delay("consumer")
    assert isinstance(consumer, ConsumerDelay) and consumer.seconds(1) is None and consumer.wait(1, budget) == 45
    assert resolve_message_retry_delay(0) == FixedDelay(0) and resolve_message_retry_delay(
        timedelta(minutes=2)
    ) == FixedDelay(120)
    assert resolve_message_retry_delay("90").seconds(3) == 90  # a rendered template
    custom = ExponentialBackoff(base=1)
    assert resolve_message_retry_delay(custom) is custom
    by_attempt = resolve_message_retry_delay(lambda n: timedelta(seconds=10 * n))
    assert isinstance(by_attempt, CallableDelay) and by_attempt.seconds(3) == 30
    assert resolve_message_retry_delay(lambda n: None).seconds(1) is None  # the consumer's
    with pytest.raises(CloudflareQueuesValidationError, match=r"message_retry_delay\(2\)"):
        resolve_message_retry_delay(lambda n: -n).seconds(2)
    for bad in ("soon", -1, 100_000, True):
        with pytest.raises(CloudflareQueuesValidationError, match="message_retry_delay"):
            resolve_message_retry_delay(bad)


def test_retry_delays_are_described_for_the_retries_the_consumer_allows() -> None:
    """Only the retries that happen: max_retries=2 retries twice (a third failure ends the message)."""
    assert DEFAULT_BACKOFF.describe(AttemptBudget(max_retries=2)) == "30 s, 60 s"
    assert DEFAULT_BACKOFF.describe(AttemptBudget(max_retries=6)) == "30 s, 60 s, 120 s, 240 s, ..."
    assert FixedDelay(5).describe(AttemptBudget(max_retries=0)) == "never: the consumer allows no retries"
    assert ConsumerDelay().describe(AttemptBudget(retry_delay=12)) == "the consumer's retry_delay (12 s)"


def _queue(consumers: list[dict[str, object]]) -> Queue:
    return Queue.model_validate({"queue_id": QUEUE, "queue_name": "q", "consumers": consumers})


def test_the_budget_comes_from_the_http_pull_consumer() -> None:
    default = AttemptBudget.of(_queue([{"type": "http_pull", "settings": {}, "dead_letter_queue": ""}]))
    assert (default.max_retries, default.deliveries, default.dead_letter_queue) == (3, 4, None)
    assert [default.is_last_delivery(n) for n in (1, 3, 4, 5)] == [False, False, True, True]
    assert default.left_after(1) == 3 and "deletes it" in default.fate
    configured = AttemptBudget.of(
        _queue(
            [
                {"type": "worker", "script_name": "w", "settings": {"max_retries": 9}},
                {"type": "http_pull", "settings": {"max_retries": 0, "retry_delay": 5}, "dead_letter_queue": "dlq"},
            ]
        )
    )
    assert (configured.deliveries, configured.retry_delay, configured.dead_letter_queue) == (1, 5.0, "dlq")
    assert configured.is_last_delivery(1) and "dead-letter queue 'dlq'" in configured.fate
    assert AttemptBudget.of(_queue([])) == AttemptBudget()  # no pull consumer: the service's defaults


# -- ack answers -----------------------------------------------------------------------------------


def _ack(acks: list[str], retries: list[str], answers: list[object]) -> AckResult:
    """Run the ack flow against scripted answers: a dict is a 200 ack answer, an exception is raised."""
    script: Iterator[object] = iter(answers)

    def send(request: ApiRequest) -> RawResponse:
        answer = next(script)
        if isinstance(answer, Exception):
            raise answer
        body = {"success": True, "errors": [], "messages": [], "result": answer}
        return RawResponse(200, json.dumps(body).encode(), {})

    ctx = flows.FlowContext(account_id=ACCOUNT, scope="test", retry=RetryPolicy(initial_backoff=0, max_backoff=0))
    return flows.run(
        flows.ack_messages(ctx, queue=QUEUE, acks=acks, retries=[(r, 0) for r in retries]), send, lambda _: None
    )


def test_warnings_that_were_applied_anyway_are_not_failures() -> None:
    late = {"ackCount": 2, "retryCount": 0, "warnings": {"l1": "lease expired before this acknowledgement"}}
    result = _ack(["l1", "l2"], [], [late])
    assert (result.not_applied, result.unconfirmed, result.warnings) == ({}, {}, {"l1": late["warnings"]["l1"]})


def test_the_counts_say_which_leases_were_not_applied() -> None:
    answer = {"ackCount": 1, "retryCount": 0, "warnings": {"m1": "unknown lease id", "r1": "lease expired"}}
    result = _ack(["l1", "m1"], ["r1"], [answer])
    assert result.not_applied == {"m1": "unknown lease id", "r1": "lease expired"}


def test_when_the_counts_cannot_tell_every_suspect_is_listed() -> None:
    answer = {"ackCount": 1, "retryCount": 0, "warnings": {}}
    result = _ack(["l1", "l2"], [], [answer])
    assert set(result.not_applied) == {"l1", "l2"}
    assert "acknowledged 1 of the 2 lease(s) sent without saying which" in result.not_applied["l1"]


def test_already_acknowledged_is_settled() -> None:
    answer = {"ackCount": 0, "retryCount": 0, "warnings": {"l1": "lease already acked; ignored"}}
    assert _ack(["l1"], [], [answer]).not_applied == {}


def test_after_a_lost_answer_the_resent_acks_outcome_is_unknown_not_failed() -> None:
    lost = CloudflareQueuesTransportError("connection reset", operation="ack", outcome_unknown=True)
    resent = {"ackCount": 0, "retryCount": 0, "warnings": {"l1": "the message is no longer in the queue"}}
    result = _ack(["l1"], [], [lost, resent])
    assert result.not_applied == {} and set(result.unconfirmed) == {"l1"}
    assert "an attempt that got no answer" in result.unconfirmed["l1"]
