"""
The API's answers: an HTTP response (:class:`~airflow_provider_cfqueues.api.operations.RawResponse`)
becomes the envelope with a typed ``result``, or the exception it means.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from .errors import (
    CloudflareQueuesApiError,
    CloudflareQueuesResponseError,
    CloudflareQueuesTransportError,
    error_from_response,
)
from .models import (
    AckAnswer,
    Consumer,
    Envelope,
    PeekAnswer,
    PullAnswer,
    PurgeMessagesAnswer,
    PurgeStatus,
    PushAnswer,
    Queue,
    QueueMetrics,
)
from .operations import ApiRequest, RawResponse
from .retry import http_date, parse_retry_after

_ENVELOPES: dict[str, TypeAdapter[Any]] = {
    "push": TypeAdapter(Envelope[PushAnswer]),
    "push_batch": TypeAdapter(Envelope[PushAnswer]),
    "pull": TypeAdapter(Envelope[PullAnswer]),
    "ack": TypeAdapter(Envelope[AckAnswer]),
    "metrics": TypeAdapter(Envelope[QueueMetrics]),
    "get_queue": TypeAdapter(Envelope[Queue]),
    "list_queues": TypeAdapter(Envelope[list[Queue]]),
    "list_consumers": TypeAdapter(Envelope[list[Consumer]]),
    "create_queue": TypeAdapter(Envelope[Queue]),
    "update_queue": TypeAdapter(Envelope[Queue]),
    "delete_queue": TypeAdapter(Envelope[Any]),
    "purge": TypeAdapter(Envelope[Any]),
    "purge_status": TypeAdapter(Envelope[PurgeStatus]),
    "peek": TypeAdapter(Envelope[PeekAnswer]),
    "purge_messages": TypeAdapter(Envelope[PurgeMessagesAnswer]),
    "create_consumer": TypeAdapter(Envelope[Consumer]),
    "update_consumer": TypeAdapter(Envelope[Consumer]),
    "delete_consumer": TypeAdapter(Envelope[Any]),
}


def answered_at_ms(headers: Mapping[str, str]) -> int | None:
    """The answer's ``Date`` header in ms since the epoch (``None`` when absent or unreadable)."""
    when = http_date(next((v for k, v in headers.items() if k.lower() == "date"), None))
    return None if when is None else int(when.timestamp() * 1000)


def parse_response(request: ApiRequest, response: RawResponse) -> Envelope[Any]:
    """
    The answer's envelope with a typed ``result``, or the exception that the answer means.

    A 2xx answer that is not JSON (cut off, or an HTML page) raises a retryable
    :class:`CloudflareQueuesTransportError` whose outcome is unknown; a JSON answer of the wrong
    shape raises :class:`CloudflareQueuesResponseError`.
    """
    status = response.status
    if 300 <= status < 400:
        location = {k.lower(): v for k, v in response.headers.items()}.get("location", "")
        target = urlsplit(location)
        shown = f"{target.scheme}://{target.hostname}{target.path}" if target.hostname else location.split("?")[0]
        raise CloudflareQueuesResponseError(
            f"HTTP {status}: the API answered with a redirect to {shown or 'nowhere'}; redirects are not followed "
            "(they could take the token elsewhere): set the connection's host to the API base URL itself",
            operation=request.operation,
        )
    if not 200 <= status < 300:
        headers = {k.lower(): v for k, v in response.headers.items()}
        raise error_from_response(
            request.operation,
            status,
            response.body,
            retry_after=parse_retry_after(headers.get("retry-after")),
            content_type=headers.get("content-type", ""),
        )
    try:
        envelope: Envelope[Any] = _ENVELOPES[request.operation].validate_json(response.body)
    except ValidationError as err:
        if any(e["type"] == "json_invalid" for e in err.errors()):
            raise CloudflareQueuesTransportError(
                f"HTTP {status} with a body that is not valid JSON ({len(response.body)} bytes; cut off "
                "or not from the API)",
                operation=request.operation,
            ) from None
        raise CloudflareQueuesResponseError(
            f"HTTP {status} with an answer that does not match the API: {_first_error(err)}",
            operation=request.operation,
        ) from None
    if not envelope.success:
        raise CloudflareQueuesApiError(
            f"HTTP {status} with success=false: {envelope.errors}",
            status=status,
            errors=envelope.errors,
            operation=request.operation,
        )
    return envelope


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{first['msg']} at {location or 'the top level'}"
