"""Ack and retry with delays, the consumer's retry delay, attempts, max_retries and the dead-letter queue."""

from __future__ import annotations

from airflow_provider_cfqueues.api.models import decode_body

from .target import OwnedQueue, Target, redelivered


def test_ack_and_retry_with_delays(contract: Target) -> None:
    queue = contract.queue("retry")
    contract.hook.push_messages(["a", "b", "c"], queue=queue.id)
    leased = {message["body"]: message for message in contract.collect(queue, 3)}
    answer = contract.ack(
        queue,
        acks=[leased["a"]["lease_id"]],
        retries=[
            {"lease_id": leased["b"]["lease_id"], "delay_seconds": 10},
            {"lease_id": leased["c"]["lease_id"], "delay_seconds": 0},
        ],
    )
    retried_at = contract.now()
    contract.expect(
        "counts", "ackCount and retryCount count what was applied", [1, 2], [answer["ackCount"], answer["retryCount"]]
    )
    back = contract.collect(queue, 1, timeout=5)
    contract.expect(
        "retry with delay 0",
        "a retry with delay_seconds 0 comes back at once; one with 10 s does not",
        ["c"],
        [message["body"] for message in back],
    )
    contract.expect(
        "attempts after a retry",
        "the retried delivery counts a second attempt",
        [2],
        [message["attempts"] for message in back],
    )
    contract.wait_until(retried_at + 11.5)
    later = contract.collect(queue, 1)
    contract.expect(
        "retry with delay 10",
        "a message retried with 10 s comes back after 10 s",
        ["b"],
        [message["body"] for message in later],
    )
    contract.ack(queue, [message["lease_id"] for message in back + later])


def test_consumer_retry_delay(contract: Target) -> None:
    queue = contract.queue("retry-delay", retry_delay=4)
    contract.hook.push_message("m", queue=queue.id)
    [message] = contract.collect(queue, 1)
    contract.ack(queue, retries=[{"lease_id": message["lease_id"]}])
    retried_at = contract.now()
    contract.wait_until(retried_at + 1.5)
    contract.expect(
        "retry without delay",
        "a retry without delay_seconds waits the consumer's retry_delay",
        [],
        contract.pull(queue),
    )
    contract.wait_until(retried_at + 5.5)
    [message] = contract.collect(queue, 1)
    contract.expect(
        "after retry_delay", "the message comes back after the consumer's retry_delay", 2, message["attempts"]
    )
    contract.ack(queue, retries=[{"lease_id": message["lease_id"], "delay_seconds": 0}])
    back = contract.collect(queue, 1, timeout=3)
    contract.expect("delay_seconds 0", "delay_seconds 0 overrides the consumer's retry_delay", 1, len(back))
    contract.ack(queue, [m["lease_id"] for m in back])


def test_retry_delay_applies_when_a_lease_expires(contract: Target) -> None:
    queue = contract.queue("expiry-delay", retry_delay=5, visibility_timeout=2)
    contract.hook.push_message("m", queue=queue.id)
    [message] = contract.collect(queue, 1)  # leased for the consumer's 2 s
    leased_at = contract.now()
    contract.wait_until(leased_at + 4)
    contract.expect(
        "2 s after expiry", "the consumer's retry_delay also applies when a lease expires", [], contract.pull(queue)
    )
    contract.wait_until(leased_at + 8.5)
    back = contract.collect(queue, 1)
    contract.expect(
        "after expiry + retry_delay",
        "then the message is delivered again",
        {"again": 1, "others": 0},
        redelivered([message], back),
    )
    contract.ack(queue, [m["lease_id"] for m in back])


def _deliveries_until_gone(contract: Target, queue: OwnedQueue) -> list[int]:
    """Pull and retry (no delay) until the message stops coming; the attempts of each delivery."""
    attempts = []
    for _ in range(6):
        delivered = contract.collect(queue, 1, timeout=5)
        if not delivered:
            break
        attempts.append(delivered[0]["attempts"])
        contract.ack(queue, retries=[{"lease_id": delivered[0]["lease_id"], "delay_seconds": 0}])
    return attempts


def test_max_retries_without_dead_letter_queue(contract: Target) -> None:
    queue = contract.queue("max-retries", max_retries=1)
    contract.hook.push_message("m", queue=queue.id)
    attempts = _deliveries_until_gone(contract, queue)
    contract.expect_that(
        "deliveries with max_retries 1",
        "delivered max_retries or max_retries + 1 times (the docs differ), then not again",
        len(attempts),
        len(attempts) in (1, 2),
    )
    contract.observe(
        "deliveries with max_retries 1",
        "is the boundary max_retries + 1 deliveries (Workers docs, miniflare) or max_retries (pull-consumer page)?",
        attempts,
        [1, 2],
    )
    metrics = contract.settled_metrics(queue, 0)
    contract.expect(
        "backlog after the last retry",
        "without a dead-letter queue the message is deleted",
        0,
        metrics["backlog_count"],
    )


def test_max_retries_with_dead_letter_queue(contract: Target) -> None:
    dead_letters = contract.dead_letter_queue_name("dlq")
    queue = contract.queue("to-dlq", max_retries=0, dead_letter_queue=dead_letters)
    body = {"order": 42}
    contract.hook.push_message(body, queue=queue.id)
    attempts = _deliveries_until_gone(contract, queue)
    contract.expect("deliveries with max_retries 0", "max_retries 0: one delivery, no retry", [1], attempts)
    dlq = None
    for _ in contract.polls():
        dlq = contract.adopt(dead_letters)
        if dlq is not None:
            break
    contract.expect(
        "dead-letter queue exists", "a missing dead-letter queue is created by the service", True, dlq is not None
    )
    assert dlq is not None
    contract.add_consumer(dlq)
    moved = contract.collect(dlq, 1)
    contract.expect(
        "dead-lettered body",
        "the exhausted message is written to the dead-letter queue",
        [body],
        [decode_body(m["body"], m["metadata"].get("CF-Content-Type", "json"))[0] for m in moved],
    )
    contract.observe(
        "dead-lettered attempts",
        "attempts of its first delivery from the dead-letter queue",
        [m["attempts"] for m in moved],
        [1],
    )
    contract.ack(dlq, [m["lease_id"] for m in moved])
