"""Error codes and statuses of the documented failures, and of pull consumers that are missing or new."""

from __future__ import annotations

import secrets

from .target import Target


def test_unknown_and_malformed_queue_ids(contract: Target) -> None:
    unknown = contract.call("GET", f"/{secrets.token_hex(16)}/metrics")
    contract.observe(
        "unknown queue id on /metrics",
        "10104 QueueNotFound is documented for an unknown queue; some endpoints are reported to answer 11000 or "
        "10004 (status, code)",
        [unknown.status, unknown.error_code],
        [404, 10104],
    )
    malformed = contract.call("GET", "/not_a_queue_id/metrics")
    contract.observe(
        "malformed queue id",
        "10107 QueueIDMalformed is documented 'for API Gateway requests'; the gateway may answer 7003 (status, code)",
        [malformed.status, malformed.error_code],
        [400, 10107],
    )


def test_wrong_token(contract: Target) -> None:
    wrong = contract.call("GET", "", token=secrets.token_urlsafe(30))
    contract.expect_that(
        "wrong token", "a token the service does not accept is refused (4xx)", wrong.status, 400 <= wrong.status < 500
    )
    contract.observe(
        "wrong token answer",
        "403 with 10000, or 400 with 6003 / 6111, or 9109? (status, code; not documented)",
        [wrong.status, wrong.error_code],
        [403, 10000],
    )


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
    second = contract.call("POST", f"/{queue.id}/consumers", {"type": "http_pull"})  # deleted with the queue
    contract.observe(
        "a second HTTP pull consumer",
        "the docs mention several consumers; refused, or shared? (status, code; not documented)",
        [second.status, second.error_code],
        [409, 11004],
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
