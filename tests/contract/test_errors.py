"""Error codes and statuses of the documented failures, and of pull consumers that are missing or new."""

from __future__ import annotations

import secrets

from .target import Target


def test_unknown_and_malformed_queue_ids(contract: Target) -> None:
    unknown = contract.call("GET", f"/{secrets.token_hex(16)}/metrics")
    contract.expect("unknown queue id", "a queue that does not exist: 10104 QueueNotFound", 10104, unknown.error_code)
    contract.observe("unknown queue id status", "the HTTP status of 10104 (not documented)", unknown.status, 404)
    malformed = contract.call("GET", "/not_a_queue_id/metrics")
    contract.expect(
        "malformed queue id", "a queue id that is not alphanumeric: 10107 QueueIDMalformed", 10107, malformed.error_code
    )
    contract.observe("malformed queue id status", "the HTTP status of 10107 (not documented)", malformed.status, 400)


def test_wrong_token(contract: Target) -> None:
    wrong = contract.call("GET", "", token=secrets.token_urlsafe(30))
    contract.expect("wrong token", "a wrong token gets 403", 403, wrong.status)
    contract.observe("wrong token code", "the error code of a wrong token", wrong.error_code, 10000)


def test_pull_consumers_missing_new_and_second(contract: Target) -> None:
    queue = contract.queue("consumers", consumer=False)
    missing = contract.call("POST", f"/{queue.id}/messages/pull", {})
    contract.observe(
        "pull without a pull consumer",
        "third-party reports: 405 'pull not enabled' (status, code)",
        [missing.status, missing.error_code],
        [405, 10116],
    )
    contract.add_consumer(queue, ready=False)
    at_once = contract.call("POST", f"/{queue.id}/messages/pull", {})
    contract.observe(
        "pull right after creating the consumer",
        "third-party reports: 405 for a short while (status)",
        at_once.status,
        200,
    )
    contract.await_consumer(queue)
    second = contract.call("POST", f"/{queue.id}/consumers", {"type": "http_pull"})
    contract.expect_that(
        "a second consumer",
        "a queue has one active consumer: a second is refused (4xx)",
        second.status,
        400 <= second.status < 500,
    )
    contract.observe(
        "second consumer answer", "status and code (not documented)", [second.status, second.error_code], [409, 11004]
    )
    contract.hook.push_message("works", queue=queue.id)
    delivered = contract.collect(queue, 1)
    contract.expect("pull once ready", "the consumer delivers", ["works"], [m["body"] for m in delivered])
    contract.ack(queue, [m["lease_id"] for m in delivered])


def test_duplicate_queue_name(contract: Target) -> None:
    queue = contract.queue("duplicate", consumer=False)
    again = contract.call("POST", "", {"queue_name": queue.name})
    if again.status == 200:  # not expected: own it anyway so that it is deleted
        contract.own(queue.name, again.payload["result"]["queue_id"])
    contract.observe(
        "same name again",
        "a second queue with a taken name: refused? (status and code are not documented)",
        [again.status, again.error_code],
        [409, 11009],
    )
