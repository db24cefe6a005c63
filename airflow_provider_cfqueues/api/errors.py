"""
The provider's exception hierarchy, rooted in ``Exception`` (the API core imports nothing from
Airflow: Airflow fails a task on any exception), and the mapping from an HTTP
answer (status + Cloudflare error envelope) to the exception a user can act on.

::

    CloudflareQueuesError
    ├── CloudflareQueuesConfigError       the connection is incomplete (no request sent)
    ├── CloudflareQueuesValidationError   bad input caught before sending (no request sent)
    ├── CloudflareQueuesApiError          the API answered with an error
    │   ├── CloudflareQueuesAuthError         400/9106, 401, 403: token missing, wrong or lacking permission
    │   ├── CloudflareQueuesNotFoundError     404: unknown queue or account
    │   ├── CloudflareQueuesBadRequestError   other 4xx: the request was refused
    │   │   ├── CloudflareQueuesPullNotEnabledError   405 on pull: no HTTP pull consumer
    │   │   └── CloudflareQueuesDeliveryPausedError   409 queue_delivery_paused (or 10252): delivery is paused
    │   ├── CloudflareQueuesRateLimitError    429 or a 429-class code (transient)
    │   └── CloudflareQueuesServerError       5xx (transient)
    ├── CloudflareQueuesTransportError    no usable answer: connection error, timeout, cut-off body (transient)
    ├── CloudflareQueuesResponseError     a 2xx answer that does not match the API's shape
    ├── CloudflareQueuesConflictError     a read-then-replace update found a change made in between: nothing sent
    ├── CloudflareQueuesStaleNameError    a destructive call: the id a name resolved to carries another name now
    └── CloudflareQueuesPartialFailure    a multi-request operation failed half-way: says what was done
        ├── CloudflareQueuesPushError
        └── CloudflareQueuesAckError

``retryable`` tells whether retrying the same request can succeed; ``outcome_unknown`` whether the
service may have applied it although no answer arrived.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

#: Queues error codes of the "429 type": back off and try again.
TRANSIENT_CODES = frozenset({10250, 10251, 10253})
#: 10253: the Free plan's 10,000 operations of the day are used up (429 until 00:00 UTC)
FREE_PLAN_OPERATIONS_CODE = 10253
#: 10252 QueueDisabled: the queue's delivery is paused (not transient: it lasts until resumed).
PAUSED_CODE = 10252
AUTH_CODES = frozenset({9106, 9109, 10000, 10106, 6003, 6111})

WRANGLER_PULL_HINT = (
    "enable an HTTP pull consumer on the queue: `npx wrangler queues consumer http add <queue-name>` "
    '(or POST /accounts/{account_id}/queues/{queue_id}/consumers with {"type": "http_pull"})'
)


class CloudflareQueuesError(Exception):
    """
    Base of every error raised by the provider.

    :param message: what went wrong, in words a user can act on.
    :param operation: the API operation (``push``, ``pull``, ``ack``, ...), when there is one.
    :param hint: how to fix it, appended to the message.
    """

    retryable = False
    outcome_unknown = False

    def __init__(self, message: str, *, operation: str | None = None, hint: str | None = None) -> None:
        self.operation = operation
        self.hint = hint
        self.detail = message
        text = f"{operation}: {message}" if operation else message
        if hint:
            text = f"{text}. Fix: {hint}"
        super().__init__(text)


class CloudflareQueuesConfigError(CloudflareQueuesError):
    """The connection or hook arguments are incomplete or invalid; nothing was sent."""


class CloudflareQueuesValidationError(CloudflareQueuesError, ValueError):
    """An input is invalid (size, count, content type, delay, id...); nothing was sent."""


class CloudflareQueuesApiError(CloudflareQueuesError):
    """
    The API answered with an error.

    :param status: the HTTP status.
    :param errors: the envelope's ``errors`` (``[{"code": ..., "message": ...}]``).
    :param retry_after: seconds from the ``Retry-After`` header, when given.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        errors: Sequence[dict[str, Any]] = (),
        operation: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.errors = list(errors)
        self.codes = [int(e["code"]) for e in self.errors if isinstance(e.get("code"), int)]
        self.retry_after = retry_after
        super().__init__(message, operation=operation, hint=hint)


class CloudflareQueuesAuthError(CloudflareQueuesApiError):
    """The token is missing, wrong, or lacks permission on this account or queue."""


class CloudflareQueuesNotFoundError(CloudflareQueuesApiError):
    """The queue (or account) does not exist."""


class CloudflareQueuesBadRequestError(CloudflareQueuesApiError):
    """The API refused the request as invalid."""


class CloudflareQueuesPullNotEnabledError(CloudflareQueuesBadRequestError):
    """A pull on a queue that has no HTTP pull consumer (HTTP 405)."""


class CloudflareQueuesDeliveryPausedError(CloudflareQueuesBadRequestError):
    """Delivery of the queue is paused (HTTP 409 ``queue_delivery_paused``): pushes are kept, pulls
    are refused until it is resumed. Not retried: a pause lasts until someone resumes it."""


class CloudflareQueuesRateLimitError(CloudflareQueuesApiError):
    """Too many requests (HTTP 429, or a 429-class Queues code); retried with backoff."""

    retryable = True


class CloudflareQueuesServerError(CloudflareQueuesApiError):
    """The service (or a proxy in front of it) failed with a 5xx; retried with backoff."""

    retryable = True


class CloudflareQueuesTransportError(CloudflareQueuesError):
    """
    No usable answer: the connection failed, timed out, or the answer was cut off.

    :param outcome_unknown: the request may have reached the service and been applied.
    """

    retryable = True

    def __init__(self, message: str, *, operation: str | None = None, outcome_unknown: bool = True) -> None:
        super().__init__(message, operation=operation)
        self.outcome_unknown = outcome_unknown


class CloudflareQueuesResponseError(CloudflareQueuesError):
    """A successful HTTP answer whose body does not have the shape the API documents."""


class CloudflareQueuesConflictError(CloudflareQueuesError):
    """A read-then-replace update found the resource changed by someone else in between; nothing was sent."""


class CloudflareQueuesStaleNameError(CloudflareQueuesError):
    """A destructive call found that the queue id a name resolved to now carries another name; nothing was done."""


class CloudflareQueuesPartialFailure(CloudflareQueuesError):
    """A multi-request operation failed part-way; the attributes say exactly what was done."""

    def __init__(self, message: str, *, operation: str, cause: CloudflareQueuesError) -> None:
        super().__init__(message, operation=operation)
        self.cause = cause


class CloudflareQueuesPushError(CloudflareQueuesPartialFailure):
    """
    Pushing several messages failed part-way.

    :param pushed: indices (in the input) of the messages the service accepted.
    :param failed: indices of the messages in the request that failed; when ``outcome_unknown`` is
        true they may have been enqueued (a retry could deliver them twice).
    :param not_sent: indices of the messages that were never sent.
    """

    def __init__(
        self,
        *,
        pushed: Sequence[int],
        failed: Sequence[int],
        not_sent: Sequence[int],
        requests: int,
        cause: CloudflareQueuesError,
    ) -> None:
        self.pushed = list(pushed)
        self.failed = list(failed)
        self.not_sent = list(not_sent)
        self.requests = requests
        self.outcome_unknown = cause.outcome_unknown
        state = "may or may not have been enqueued" if cause.outcome_unknown else "were not enqueued"
        message = (
            f"{len(self.pushed)} message(s) pushed in {requests} request(s) "
            f"(indices {_ranges(self.pushed)}); {len(self.failed)} message(s) "
            f"(indices {_ranges(self.failed)}) {state}; {len(self.not_sent)} not sent "
            f"(indices {_ranges(self.not_sent)}). Cause: {cause}"
        )
        super().__init__(message, operation="push_messages", cause=cause)


class CloudflareQueuesAckError(CloudflareQueuesPartialFailure):
    """
    Acknowledging or retrying leases failed part-way.

    :param acked: lease ids the service acknowledged.
    :param retried: lease ids the service marked for retry.
    :param failed: lease ids of the request that failed; their outcome is unknown when
        ``outcome_unknown`` is true, otherwise they stay leased and come back when the lease expires.
    :param not_sent: lease ids never sent; they come back when their lease expires.
    """

    def __init__(
        self,
        *,
        acked: Sequence[str],
        retried: Sequence[str],
        failed: Sequence[str],
        not_sent: Sequence[str],
        cause: CloudflareQueuesError,
    ) -> None:
        self.acked = list(acked)
        self.retried = list(retried)
        self.failed = list(failed)
        self.not_sent = list(not_sent)
        self.outcome_unknown = cause.outcome_unknown
        state = "outcome unknown" if cause.outcome_unknown else "not applied: redelivered after their lease expires"
        message = (
            f"{len(self.acked)} lease(s) acked and {len(self.retried)} retried; {len(self.failed)} in the "
            f"failed request ({state}); {len(self.not_sent)} not sent (redelivered after their lease "
            f"expires). Cause: {cause}"
        )
        super().__init__(message, operation="ack_messages", cause=cause)


def _ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    if not indices:
        return "none"
    ordered = sorted(indices)
    parts = []
    start = prev = ordered[0]
    for index in [*ordered[1:], None]:
        if index is not None and index == prev + 1:
            prev = index
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if index is not None:
            start = prev = index
    return ", ".join(parts)


def error_from_response(
    operation: str, status: int, body: bytes, retry_after: float | None = None, content_type: str = ""
) -> CloudflareQueuesError:
    """Map a non-2xx answer to the exception a user can act on (never echoes request headers)."""
    errors: list[dict[str, Any]] = []
    try:
        payload = json.loads(body)
        if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
            errors = [e for e in payload["errors"] if isinstance(e, dict)]
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to be an envelope
        payload = None
    if errors:
        summary = "; ".join(f"{e.get('message', '')} (code {e.get('code')})" for e in errors)
    elif "html" in content_type.lower() or body.lstrip()[:1] == b"<":
        summary = "an HTML page instead of a JSON answer (a proxy or gateway error)"
    else:
        summary = f"an answer that is not a Cloudflare envelope ({len(body)} bytes)"
    codes = {e.get("code") for e in errors}
    message = f"HTTP {status}: {summary}"
    kwargs: dict[str, Any] = {"status": status, "errors": errors, "operation": operation}
    if PAUSED_CODE in codes or (status == 409 and "queue_delivery_paused" in summary):
        return CloudflareQueuesDeliveryPausedError(
            message,
            hint="resume delivery: `npx wrangler queues resume-delivery <queue-name>` (or PATCH the queue with "
            '{"settings": {"delivery_paused": false}})',
            **kwargs,
        )
    if status == 429 or codes & TRANSIENT_CODES:
        return CloudflareQueuesRateLimitError(message, retry_after=retry_after, **kwargs)
    if status >= 500:
        return CloudflareQueuesServerError(message, retry_after=retry_after, **kwargs)
    if status in (401, 403) or codes & AUTH_CODES:
        return CloudflareQueuesAuthError(
            message,
            hint="use an API token with the account's Queues Edit permission (queues read + write), "
            "for the account id set in the connection",
            **kwargs,
        )
    if status == 404:
        return CloudflareQueuesNotFoundError(
            message,
            hint="check the queue (id or name) and the account id; `npx wrangler queues list` shows them",
            **kwargs,
        )
    if status == 405 and operation == "pull":
        return CloudflareQueuesPullNotEnabledError(message, hint=WRANGLER_PULL_HINT, **kwargs)
    return CloudflareQueuesBadRequestError(message, **kwargs)
