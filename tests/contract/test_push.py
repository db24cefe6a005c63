"""Push and batch push: what is accepted, what is refused, and how sizes are counted (1 KB = 1000 B)."""

from __future__ import annotations

from .target import Target


def test_push_accepts_text_and_json_and_answers_metrics(contract: Target) -> None:
    queue = contract.queue("push")
    text = contract.push(queue, "hello", content_type="text")
    contract.expect("text push", "a text body is accepted (200)", 200, text.status)
    json_default = contract.push(queue, {"order": 1})
    contract.expect(
        "json push, no content_type", "content_type defaults to json (docs' curl example)", 200, json_default.status
    )
    metrics = (json_default.payload.get("result") or {}).get("metadata", {}).get("metrics", {})
    contract.expect_that(
        "push answer metrics",
        "result.metadata.metrics carries backlog_count, backlog_bytes, oldest_message_timestamp_ms (2026-04-28)",
        sorted(metrics),
        {"backlog_count", "backlog_bytes", "oldest_message_timestamp_ms"} <= set(metrics),
    )


def test_message_size_limit(contract: Target) -> None:
    queue = contract.queue("size")
    over = contract.push(queue, "x" * 128_001, content_type="text")
    contract.expect("128,001-byte body", "a message over 128 KB is refused with 10204", 10204, over.error_code)
    contract.observe("128,001-byte body status", "HTTP status of 10204 (not documented)", over.status, 400)
    accepted = [
        size
        for size in (127_900, 127_901, 128_000)
        if contract.push(queue, "x" * size, content_type="text").status == 200
    ]
    contract.observe(
        "largest body accepted",
        "which of 127,900 / 127,901 / 128,000 bytes fit (128 KB includes ~100 B of metadata)",
        accepted,
        [127_900],
    )
    wide = contract.push(queue, "é" * 100_000, content_type="text")  # 100,000 characters, 200,000 bytes
    contract.observe(
        "100,000 two-byte characters",
        "is the size counted in UTF-8 bytes? (status, code)",
        [wide.status, wide.error_code],
        [400, 10204],
    )


def test_batch_limits(contract: Target) -> None:
    queue = contract.queue("batch")
    hundred = contract.batch(queue, [{"body": f"m{i}", "content_type": "text"} for i in range(100)])
    contract.expect("100 messages", "a batch of 100 messages is accepted", 200, hundred.status)
    too_many = contract.batch(queue, [{"body": f"m{i}", "content_type": "text"} for i in range(101)])
    contract.expect(
        "101 messages", "a batch of more than 100 messages is refused with 10206", 10206, too_many.error_code
    )
    too_big = contract.batch(queue, [{"body": "x" * 100_000, "content_type": "text"}] * 3)
    contract.expect("300,000-byte batch", "a batch over 256 KB is refused with 10205", 10205, too_big.error_code)
    # 180,000 bytes of bodies, but each '"' is escaped to 2 bytes: about 360,000 bytes on the wire
    escaped = contract.batch(queue, [{"body": '"' * 90_000, "content_type": "text"}] * 2)
    contract.observe(
        "180,000 body bytes, 360,000 on the wire",
        "is the batch size counted on the wire? (status, code)",
        [escaped.status, escaped.error_code],
        [400, 10205],
    )


def test_delays_on_push(contract: Target) -> None:
    queue = contract.queue("delays")
    batch_over = contract.batch(queue, [{"body": "a", "content_type": "text"}], delay_seconds=86_401)
    contract.expect(
        "batch delay 86,401 s", "a batch delay over 24 h is refused with 10202", 10202, batch_over.error_code
    )
    message_over = contract.push(queue, "a", content_type="text", delay_seconds=86_401)
    contract.expect(
        "message delay 86,401 s", "a message delay over 24 h is refused with 10203", 10203, message_over.error_code
    )
    batch_zero = contract.batch(queue, [{"body": "a", "content_type": "text"}], delay_seconds=0)
    contract.observe(
        "batch delay 0", "10202 names 1-86,400 for a batch delay; is 0 accepted? (status)", batch_zero.status, 200
    )
    fraction = contract.push(queue, "a", content_type="text", delay_seconds=1.5)
    contract.observe(
        "message delay 1.5 s",
        "are fractional delays refused? (status, code)",
        [fraction.status, fraction.error_code],
        [400, 10203],
    )


def test_body_schema(contract: Target) -> None:
    queue = contract.queue("schema")
    unknown = contract.push(queue, "a", content_type="xml")
    contract.observe(
        "content_type xml",
        "a content type other than text/bytes/json/v8: refused with 10203? (status, code; not backed by the docs)",
        [unknown.status, unknown.error_code],
        [400, 10203],
    )
    worker_only = contract.push(queue, "YQ==", content_type="bytes")
    contract.observe(
        "content_type bytes over HTTP",
        "the HTTP schema allows text and json only (status, code)",
        [worker_only.status, worker_only.error_code],
        [400, 10203],
    )
    bare_string = contract.push(queue, "just text")  # json by default
    contract.observe(
        "json string body",
        "a bare string with the json type (third-party: 400 10207)",
        [bare_string.status, bare_string.error_code],
        [400, 10207],
    )
    no_body = contract.call("POST", f"/{queue.id}/messages", {"content_type": "text"})
    contract.observe(
        "no body",
        "a push without body (third-party: 400 'Required at \"body\"')",
        [no_body.status, no_body.error_code],
        [400, 10207],
    )
    malformed = contract.call("POST", f"/{queue.id}/messages", raw=b'{"body": ')
    contract.expect(
        "malformed JSON", "a request body that is not JSON is refused with 10208", 10208, malformed.error_code
    )
