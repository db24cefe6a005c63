"""From HTTP answers to exceptions a user can act on."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cfqueues.api.errors import (
    CloudflareQueuesAckError,
    CloudflareQueuesApiError,
    CloudflareQueuesAuthError,
    CloudflareQueuesBadRequestError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesPullNotEnabledError,
    CloudflareQueuesPushError,
    CloudflareQueuesRateLimitError,
    CloudflareQueuesResponseError,
    CloudflareQueuesServerError,
    CloudflareQueuesTransportError,
)
from airflow_provider_cfqueues.api.operations import RawResponse, parse_response

from ..helpers import request_of


def envelope(code: int, message: str) -> bytes:
    return json.dumps(
        {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    ).encode()


def fail(operation: str, status: int, body: bytes, headers: dict[str, str] | None = None) -> Exception:
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is what the test checks next
        parse_response(request_of(operation), RawResponse(status, body, headers or {}))
    return info.value  # type: ignore[return-value]


def test_authentication() -> None:
    error = fail("push", 403, envelope(10000, "Authentication error"))
    assert isinstance(error, CloudflareQueuesAuthError)
    assert error.status == 403 and error.codes == [10000] and not error.retryable
    assert "Queues Edit" in str(error) and str(error).startswith("push: HTTP 403")
    assert isinstance(fail("pull", 400, envelope(9106, "Missing X-Auth-Key")), CloudflareQueuesAuthError)


def test_not_found_and_pull_not_enabled() -> None:
    missing = fail("metrics", 404, envelope(10104, "QueueNotFound"))
    assert isinstance(missing, CloudflareQueuesNotFoundError) and "wrangler queues list" in str(missing)
    disabled = fail("pull", 405, envelope(10116, "messages cannot be pulled unless http_pull mode is enabled"))
    assert isinstance(disabled, CloudflareQueuesPullNotEnabledError)
    assert "npx wrangler queues consumer http add" in str(disabled)


def test_validation_refusals_are_permanent() -> None:
    error = fail("push_batch", 400, envelope(10205, "BatchSizeOutOfBounds"))
    assert isinstance(error, CloudflareQueuesBadRequestError) and not error.retryable
    assert "10205" in str(error)


def test_throttling_and_server_errors_are_transient() -> None:
    throttled = fail("push", 429, envelope(10250, "QueueOverloaded"), {"Retry-After": "12"})
    assert isinstance(throttled, CloudflareQueuesRateLimitError) and throttled.retry_after == 12
    assert throttled.retryable
    overloaded = fail("push", 400, envelope(10251, "QueueStorageLimitExceeded"))
    assert isinstance(overloaded, CloudflareQueuesRateLimitError)
    server = fail("ack", 503, b"")
    assert isinstance(server, CloudflareQueuesServerError) and server.retryable


def test_proxy_html_page() -> None:
    error = fail("pull", 502, b"<html><body>Bad Gateway</body></html>", {"Content-Type": "text/html"})
    assert isinstance(error, CloudflareQueuesServerError)
    assert "HTML page" in str(error) and "<html>" not in str(error)


def test_cut_off_and_wrong_shaped_answers() -> None:
    cut = fail("pull", 200, b'{"success":true,"result":{"messages":[{"id"')
    assert isinstance(cut, CloudflareQueuesTransportError) and cut.retryable and cut.outcome_unknown
    wrong = fail("metrics", 200, b'{"success":true,"result":{"backlog_count":"lots"}}')
    assert isinstance(wrong, CloudflareQueuesResponseError) and not wrong.retryable
    assert "backlog_count" in str(wrong)
    refused = fail("metrics", 200, envelope(10000, "x"))
    assert isinstance(refused, CloudflareQueuesApiError)


def test_partial_failures_say_what_was_done() -> None:
    cause = CloudflareQueuesServerError("HTTP 500", status=500, operation="push_batch")
    push = CloudflareQueuesPushError(
        pushed=list(range(200)), failed=list(range(200, 300)), not_sent=[300, 301, 305], requests=2, cause=cause
    )
    text = str(push)
    assert "200 message(s) pushed in 2 request(s) (indices 0-199)" in text
    assert "100 message(s) (indices 200-299) were not enqueued" in text
    assert "3 not sent (indices 300-301, 305)" in text
    lost = CloudflareQueuesTransportError("reset", operation="push_batch")
    assert "may or may not have been enqueued" in str(
        CloudflareQueuesPushError(pushed=[], failed=[0], not_sent=[], requests=0, cause=lost)
    )
    ack = CloudflareQueuesAckError(acked=["a"], retried=["b"], failed=["c"], not_sent=["d", "e"], cause=lost)
    assert ack.outcome_unknown and "2 not sent" in str(ack) and ack.cause is lost
