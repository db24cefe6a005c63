"""
Requests as plain data (:class:`ApiRequest`): ids validated so that no input can change the URL
path, and one builder per operation (pull, ack, reads). No sockets here: the sync and async
transports send what these functions build, so both behave identically. Pushes are packed in
:mod:`.push_packing`. Each request carries what its answer is parsed into (:attr:`ApiRequest.answer`),
and :func:`parse_response` turns an HTTP answer into that typed envelope, or the exception it means.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from .errors import (
    CloudflareQueuesApiError,
    CloudflareQueuesResponseError,
    CloudflareQueuesTransportError,
    CloudflareQueuesValidationError,
    error_from_response,
)
from .limits import LIST_QUEUES_PER_PAGE, MAX_ACK_BATCH
from .models import (
    AckAnswer,
    Consumer,
    Envelope,
    PeekAnswer,
    PeekRequest,
    PullAnswer,
    PullRequest,
    PurgeMessagesAnswer,
    PurgeMessagesRequest,
    PurgeStatus,
    PushAnswer,
    Queue,
    QueueMetrics,
    RefItem,
)
from .retry import http_date, parse_retry_after
from .units import batch_size as read_batch_size
from .units import delay_seconds, lease_ms

ID_RE = re.compile(r"[0-9a-f]{32}")  # use with fullmatch: "$" would accept a trailing newline
QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,63}")

#: what each request's answer is parsed into (:attr:`ApiRequest.answer`)
PUSH_ANSWER: TypeAdapter[Envelope[PushAnswer]] = TypeAdapter(Envelope[PushAnswer])
PULL_ANSWER: TypeAdapter[Envelope[PullAnswer]] = TypeAdapter(Envelope[PullAnswer])
ACK_ANSWER: TypeAdapter[Envelope[AckAnswer]] = TypeAdapter(Envelope[AckAnswer])
PEEK_ANSWER: TypeAdapter[Envelope[PeekAnswer]] = TypeAdapter(Envelope[PeekAnswer])
PURGE_MESSAGES_ANSWER: TypeAdapter[Envelope[PurgeMessagesAnswer]] = TypeAdapter(Envelope[PurgeMessagesAnswer])
METRICS_ANSWER: TypeAdapter[Envelope[QueueMetrics]] = TypeAdapter(Envelope[QueueMetrics])
QUEUE_ANSWER: TypeAdapter[Envelope[Queue]] = TypeAdapter(Envelope[Queue])
QUEUES_ANSWER: TypeAdapter[Envelope[list[Queue]]] = TypeAdapter(Envelope[list[Queue]])
CONSUMER_ANSWER: TypeAdapter[Envelope[Consumer]] = TypeAdapter(Envelope[Consumer])
CONSUMERS_ANSWER: TypeAdapter[Envelope[list[Consumer]]] = TypeAdapter(Envelope[list[Consumer]])
PURGE_STATUS_ANSWER: TypeAdapter[Envelope[PurgeStatus]] = TypeAdapter(Envelope[PurgeStatus])
ANY_ANSWER: TypeAdapter[Envelope[Any]] = TypeAdapter(Envelope[Any])

_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True)
class ApiRequest:
    """
    One HTTP request as plain data.

    :param operation: the API operation, for errors and logs (``push``, ``push_batch``, ``pull``...).
    :param method: HTTP method.
    :param path: path below the API base URL; built only from validated ids.
    :param body: the JSON body, already encoded.
    :param params: query parameters.
    :param headers: request headers of this operation (``cf-r2-jurisdiction``), beside the connection's.
    :param answer: what its answer is parsed into (:func:`parse_response`): one of the ``*_ANSWER``
        adapters below.
    """

    operation: str
    method: str
    path: str
    body: bytes | None = None
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    answer: TypeAdapter[Any] = field(kw_only=True, compare=False, repr=False)


@dataclass(frozen=True)
class RawResponse:
    """
    An HTTP answer as the transports return it.

    :param status: the HTTP status.
    :param body: the raw body.
    :param headers: the answer's headers.
    """

    status: int
    body: bytes
    headers: Mapping[str, str]


# -- ids -----------------------------------------------------------------------------------------


def validate_account_id(account_id: object) -> str:
    """An account id is 32 hex characters; anything else could change the URL path."""
    if not isinstance(account_id, str) or not ID_RE.fullmatch(account_id.strip().lower()):
        raise CloudflareQueuesValidationError(
            f"account_id must be 32 hexadecimal characters (the Account ID on the Cloudflare dashboard), "
            f"got {account_id!r}"
        )
    return account_id.strip().lower()


def is_queue_id(queue: str) -> bool:
    return bool(ID_RE.fullmatch(queue.strip().lower()))


def validate_id(value: object, what: str) -> str:
    """A queue or consumer id: 32 hexadecimal characters (so that it cannot change the URL path)."""
    if not isinstance(value, str) or not is_queue_id(value):
        raise CloudflareQueuesValidationError(f"a {what} is 32 hexadecimal characters, got {value!r}")
    return value.strip().lower()


def validate_queue_id(queue_id: object) -> str:
    return validate_id(queue_id, "queue id")


def validate_queue(queue: object) -> str:
    """A queue reference: a queue id (32 hex characters) or a queue name."""
    if isinstance(queue, str):
        if is_queue_id(queue):
            return queue.strip().lower()
        if QUEUE_NAME_RE.fullmatch(queue):
            return queue
    raise CloudflareQueuesValidationError(
        f"queue must be a queue id (32 hexadecimal characters) or a queue name (1-63 letters, digits, "
        f"'-' or '_'), got {queue!r}"
    )


def queue_path(account_id: str, queue_id: str, suffix: str = "") -> str:
    return f"/accounts/{validate_account_id(account_id)}/queues/{validate_queue_id(queue_id)}{suffix}"


def lease_label(lease_id: str) -> str:
    """
    A lease id as logs show it: its last 12 characters after an ellipsis. Lease ids look like JWTs
    (``eyJ...``), which Airflow's log redaction masks whole, so that every lease would read
    ``eyJ***``; their ends tell them apart and give nothing away. Anything else that was given as a
    lease id (a message id by mistake) is shown whole.
    """
    return lease_id if len(lease_id) <= 40 and not lease_id.startswith("eyJ") else f"…{lease_id[-12:]}"


def lease_texts(texts: Mapping[str, str]) -> str:
    """``{lease id: text}`` for a log line: ``…tail: text; …tail: text``."""
    return "; ".join(f"{lease_label(lease)}: {text}" for lease, text in texts.items())


# -- pull and ack --------------------------------------------------------------------------------


def pull_request(
    account_id: str, queue_id: str, batch_size: object = None, visibility_timeout: object = None
) -> ApiRequest:
    body = PullRequest(batch_size=read_batch_size(batch_size), visibility_timeout_ms=lease_ms(visibility_timeout))
    return ApiRequest(
        "pull",
        "POST",
        queue_path(account_id, queue_id, "/messages/pull"),
        body.model_dump_json(exclude_none=True).encode(),
        answer=PULL_ANSWER,
    )


def peek_request(account_id: str, queue_id: str, batch_size: object = None) -> ApiRequest:
    body = PeekRequest(batch_size=read_batch_size(batch_size))
    return ApiRequest(
        "peek",
        "POST",
        queue_path(account_id, queue_id, "/messages/peek"),
        body.model_dump_json(exclude_none=True).encode(),
        answer=PEEK_ANSWER,
    )


def normalize_refs(refs: object) -> list[str]:
    """
    Refs given as a list (or other iterable) of strings, peeked messages or mappings with ``ref``;
    anything else is an error naming it. ``None`` and a bare string are errors: a string is not a list
    of refs (iterating it would send its characters).
    """
    if refs is None or isinstance(refs, (str, bytes)):
        raise CloudflareQueuesValidationError(
            f"refs must be a list of refs (strings from a peek, peeked messages, or mappings with 'ref'), got "
            f"{refs!r:.80}: write [ref] for one"
        )
    if isinstance(refs, Mapping) or not isinstance(refs, Iterable):
        raise CloudflareQueuesValidationError(f"refs must be a list of refs, got {type(refs).__name__}")
    normalized = []
    for n, item in enumerate(refs):
        ref = getattr(item, "ref", None) if not isinstance(item, (str, Mapping)) else item
        if isinstance(ref, Mapping):
            ref = ref.get("ref")
        if not isinstance(ref, str) or not ref:
            raise CloudflareQueuesValidationError(
                f"refs[{n}] must be a ref string, a peeked message or a mapping with 'ref', got {item!r:.80}"
            )
        normalized.append(ref)
    return normalized


def purge_messages_requests(account_id: str, queue_id: str, refs: Sequence[str]) -> list[ApiRequest]:
    """The purge requests for ``refs``, at most :data:`MAX_ACK_BATCH` each (a peek shows at most that many)."""
    return [
        ApiRequest(
            "purge_messages",
            "POST",
            queue_path(account_id, queue_id, "/messages/purge"),
            PurgeMessagesRequest(refs=[RefItem(ref=ref) for ref in refs[start : start + MAX_ACK_BATCH]])
            .model_dump_json(exclude_none=True)
            .encode(),
            answer=PURGE_MESSAGES_ANSWER,
        )
        for start in range(0, len(refs), MAX_ACK_BATCH)
    ]


def _lease_id_of(item: object, where: str) -> str:
    lease_id = item.get("lease_id") if isinstance(item, Mapping) else getattr(item, "lease_id", item)
    if not isinstance(lease_id, str) or not lease_id.strip():
        raise CloudflareQueuesValidationError(
            f"{where}: expected a lease id (str), a pulled message or a mapping with 'lease_id', got {item!r}"
        )
    return lease_id


def normalize_acks(acks: Iterable[object]) -> list[str]:
    """Lease ids from lease ids, pulled messages or mappings with ``lease_id``."""
    if isinstance(acks, (str, bytes, Mapping)) or hasattr(acks, "lease_id"):
        acks = [acks]
    return [_lease_id_of(item, f"acks[{i}]") for i, item in enumerate(acks)]


def normalize_retries(retries: Iterable[object]) -> list[tuple[str, int | None]]:
    """``(lease id, delay)`` from lease ids, messages, mappings or ``(lease id or message, delay)`` pairs."""
    if isinstance(retries, (str, bytes, Mapping)) or hasattr(retries, "lease_id"):
        retries = [retries]
    normalized: list[tuple[str, int | None]] = []
    for i, item in enumerate(retries):
        where = f"retries[{i}]"
        delay: object = None
        if isinstance(item, tuple):
            if len(item) != 2:
                raise CloudflareQueuesValidationError(
                    f"{where}: a retry pair is (lease id, delay_seconds), got {item!r}"
                )
            item, delay = item
        elif isinstance(item, Mapping):
            delay = item.get("delay_seconds")
        normalized.append((_lease_id_of(item, where), delay_seconds(delay, f"{where}: delay_seconds")))
    return normalized


@dataclass(frozen=True)
class AckStep:
    acks: tuple[str, ...]
    retries: tuple[tuple[str, int | None], ...]
    build: Callable[[str], ApiRequest]


def ack_requests(account_id: str, acks: Sequence[str], retries: Sequence[tuple[str, int | None]]) -> list[AckStep]:
    """Acks and retries in requests of at most :data:`MAX_ACK_BATCH` lease ids, acks first."""
    items: list[tuple[str, str, int | None]] = [("ack", lease, None) for lease in acks]
    items += [("retry", lease, delay) for lease, delay in retries]
    steps: list[AckStep] = []
    for start in range(0, len(items), MAX_ACK_BATCH):
        chunk = items[start : start + MAX_ACK_BATCH]
        chunk_acks = tuple(lease for kind, lease, _ in chunk if kind == "ack")
        chunk_retries = tuple((lease, delay) for kind, lease, delay in chunk if kind == "retry")
        # the shape of models.AckRequest, written directly on this hot path (every drained batch): lease ids
        # are checked strings already; tests/api/test_operations.py validates it against AckRequest
        retry_items = [
            {"lease_id": lease} if delay is None else {"lease_id": lease, "delay_seconds": delay}
            for lease, delay in chunk_retries
        ]
        body = _encode_json({"acks": [{"lease_id": lease} for lease in chunk_acks], "retries": retry_items}).encode()

        def build(queue_id: str, body: bytes = body) -> ApiRequest:
            return ApiRequest("ack", "POST", queue_path(account_id, queue_id, "/messages/ack"), body, answer=ACK_ANSWER)

        steps.append(AckStep(chunk_acks, chunk_retries, build))
    return steps


# -- reads ---------------------------------------------------------------------------------------


def metrics_request(account_id: str, queue_id: str) -> ApiRequest:
    return ApiRequest("metrics", "GET", queue_path(account_id, queue_id, "/metrics"), answer=METRICS_ANSWER)


def get_queue_request(account_id: str, queue_id: str) -> ApiRequest:
    return ApiRequest("get_queue", "GET", queue_path(account_id, queue_id), answer=QUEUE_ANSWER)


def list_consumers_request(account_id: str, queue_id: str) -> ApiRequest:
    return ApiRequest("list_consumers", "GET", queue_path(account_id, queue_id, "/consumers"), answer=CONSUMERS_ANSWER)


def list_queues_request(account_id: str, page: int = 1, name: str | None = None) -> ApiRequest:
    params: tuple[tuple[str, str], ...] = (("page", str(page)), ("per_page", str(LIST_QUEUES_PER_PAGE)))
    if name is not None:
        params += (("name", validate_queue(name)),)
    return ApiRequest(
        "list_queues", "GET", f"/accounts/{validate_account_id(account_id)}/queues", params=params, answer=QUEUES_ANSWER
    )


# -- answers -----------------------------------------------------------------------------------------


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
        envelope: Envelope[Any] = request.answer.validate_json(response.body)
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
