"""
One function per API operation: validate the input, build the request as plain data
(:class:`ApiRequest`), and parse the answer. No sockets here: the sync and async transports send
what these functions build, so both behave identically.

Pushes are split into batches of at most 100 messages and 256 KB *as serialized on the wire*: each
message is encoded once, and the batch body is the concatenation of those bytes, so the size the
planner counts is exactly the size sent.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from .errors import (
    CloudflareQueuesApiError,
    CloudflareQueuesResponseError,
    CloudflareQueuesTransportError,
    CloudflareQueuesValidationError,
    error_from_response,
)
from .limits import (
    LIST_QUEUES_PER_PAGE,
    MAX_ACK_BATCH,
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_BODY_BYTES,
)
from .models import (
    AckAnswer,
    Consumer,
    Envelope,
    OutgoingMessage,
    PullAnswer,
    PullRequest,
    PurgeStatus,
    PushAnswer,
    Queue,
    QueueMetrics,
)
from .retry import http_date, parse_retry_after
from .units import batch_size as read_batch_size
from .units import delay_seconds, lease_ms

ID_RE = re.compile(r"[0-9a-f]{32}")  # use with fullmatch: "$" would accept a trailing newline
QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,63}")

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
    """

    operation: str
    method: str
    path: str
    body: bytes | None = None
    params: tuple[tuple[str, str], ...] = ()


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


# -- scalar inputs -------------------------------------------------------------------------------


# -- push ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class PreparedMessage:
    """
    A validated message, encoded once as it goes on the wire.

    :param index: its position in the input.
    :param wire: its JSON object as sent.
    :param body_bytes: the body's size as the service counts it.
    :param has_delay: whether it carries its own ``delay_seconds``.
    """

    index: int
    wire: bytes
    body_bytes: int
    has_delay: bool = False


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


_JSON_FRAME = len(b'{"body":,"content_type":"json"}')


def prepare_message(
    index: int, item: object, default_content_type: str | None = None, default_delay: object = None
) -> PreparedMessage:
    """
    Validate one message (a body, or an :class:`OutgoingMessage`) and encode it for the wire.

    ``default_content_type`` and ``default_delay`` apply where the message does not set its own.
    Raises :class:`CloudflareQueuesValidationError` naming the message's index and what to change.
    """
    body, content_type, delay = item, default_content_type, default_delay
    if isinstance(item, OutgoingMessage):
        body = item.body
        content_type = item.content_type or default_content_type
        delay = item.delay_seconds if item.delay_seconds is not None else default_delay
    is_text = isinstance(body, str)
    if not is_text and isinstance(body, (bytes, bytearray, memoryview)):
        raise CloudflareQueuesValidationError(
            f"message {index}: bytes bodies cannot be pushed over the HTTP API (it takes text and json "
            "only); decode them to str, or base64-encode them into a str or a JSON object"
        )
    if content_type is None:
        content_type = "text" if is_text else "json"
    elif content_type == "text" and not is_text:
        raise CloudflareQueuesValidationError(
            f"message {index}: content_type 'text' needs a str body, got {type(body).__name__}; use 'json' instead"
        )
    elif content_type == "json" and is_text:
        raise CloudflareQueuesValidationError(
            f"message {index}: the API refuses a str body with content_type 'json'; send it as 'text' or wrap "
            'it in a JSON object such as {"value": ...}'
        )
    elif content_type not in ("text", "json"):
        raise CloudflareQueuesValidationError(
            f"message {index}: content_type must be 'text' or 'json' over the HTTP API, got {content_type!r}"
        )
    if delay is not None:
        delay = delay_seconds(delay, f"message {index}: delay_seconds")
    try:
        if content_type == "json" and delay is None:
            wire = f'{{"body":{_encode_json(body)},"content_type":"json"}}'.encode()
            body_bytes = len(wire) - _JSON_FRAME
        else:
            wire_text = f'{{"body":{_encode_json(body)},"content_type":"{content_type}"'
            if delay is not None:
                wire_text += f',"delay_seconds":{_format_number(delay)}'
            wire = (wire_text + "}").encode()
            body_bytes = len(cast(str, body).encode()) if is_text else len(_encode_json(body).encode())
    except UnicodeEncodeError:
        raise CloudflareQueuesValidationError(
            f"message {index}: the body holds characters that cannot be encoded as UTF-8 (lone surrogates)"
        ) from None
    except (TypeError, ValueError) as err:  # ValueError covers NaN/Infinity and circular references
        raise CloudflareQueuesValidationError(f"message {index}: the body is not JSON-serialisable: {err}") from None
    if body_bytes > MAX_BODY_BYTES:
        raise CloudflareQueuesValidationError(
            f"message {index}: the body is {body_bytes:,} bytes; a message holds at most {MAX_BODY_BYTES:,} "
            "(128 KB including ~100 bytes of metadata). Store large payloads elsewhere (R2, S3) and "
            "push a reference"
        )
    return PreparedMessage(index, wire, body_bytes, delay is not None)


def prepare_messages(messages: Iterable[object], default_content_type: str | None = None) -> list[PreparedMessage]:
    """Validate and encode every message before anything is sent."""
    if isinstance(messages, (str, bytes, Mapping, OutgoingMessage)):
        raise CloudflareQueuesValidationError(
            "messages must be an iterable of bodies or OutgoingMessage objects; to push one body use "
            "push_message(), or wrap it in a list"
        )
    return [prepare_message(i, item, default_content_type) for i, item in enumerate(messages)]


def push_message_request(account_id: str, queue_id: str, message: PreparedMessage) -> ApiRequest:
    return ApiRequest("push", "POST", queue_path(account_id, queue_id, "/messages"), message.wire)


def _batch_frame(delay: float | None) -> tuple[bytes, bytes]:
    close = "]" if delay is None else f'],"delay_seconds":{_format_number(delay)}'
    return b'{"messages":[', (close + "}").encode()


def batch_capacity(delay: float | None) -> int:
    """Bytes available to messages in one batch, counting one separator per message."""
    opening, closing = _batch_frame(delay)
    return MAX_BATCH_BYTES - len(opening) - len(closing) + 1


def min_batches(costs: Sequence[int], capacity: int) -> int:
    """The lower bound on batches: by count (100 per batch) and by bytes (``capacity`` per batch)."""
    return max(-(-len(costs) // MAX_BATCH_MESSAGES), -(-sum(costs) // capacity))


def plan_batches(
    prepared: Sequence[PreparedMessage], delay: float | None, *, preserve_order: bool = False
) -> list[list[PreparedMessage]]:
    """
    Split messages into the fewest batches of at most 100 messages and 256 KB on the wire.

    Consecutive messages are packed in order first. When that needs more batches than the lower
    bound (by count and by bytes) and ``preserve_order`` is false, the planner looks for the smallest
    number of batches, from the lower bound up, into which the messages fit when each is placed,
    largest first, into the batch with the most room left (which balances bytes and counts). Cloudflare
    Queues does not guarantee delivery order either way. A message too large for any batch (JSON
    escaping can make it larger than 256 KB) travels alone as a single push (see :func:`push_requests`).
    """
    capacity = batch_capacity(delay)
    fitting = [m for m in prepared if len(m.wire) + 1 <= capacity]
    in_order = _pack_in_order(fitting, capacity)
    if preserve_order:
        return in_order
    for count in range(min_batches([len(m.wire) + 1 for m in fitting], capacity), len(in_order)):
        balanced = _pack_balanced(fitting, count, capacity)
        if balanced is not None:
            return balanced
    return in_order


def _pack_in_order(messages: Sequence[PreparedMessage], capacity: int) -> list[list[PreparedMessage]]:
    batches: list[list[PreparedMessage]] = []
    current: list[PreparedMessage] = []
    used = 0
    for message in messages:
        cost = len(message.wire) + 1
        if current and (len(current) == MAX_BATCH_MESSAGES or used + cost > capacity):
            batches.append(current)
            current, used = [], 0
        current.append(message)
        used += cost
    if current:
        batches.append(current)
    return batches


def _pack_balanced(
    messages: Sequence[PreparedMessage], count: int, capacity: int
) -> list[list[PreparedMessage]] | None:
    """Worst-fit decreasing into exactly ``count`` batches, or ``None`` when the messages do not fit."""
    batches: list[list[PreparedMessage]] = [[] for _ in range(count)]
    room = [(-capacity, b) for b in range(count)]  # a heap of (-free bytes, batch), batches with space left
    for message in sorted(messages, key=lambda m: len(m.wire), reverse=True):
        if not room:
            return None
        free, b = heapq.heappop(room)
        cost = len(message.wire) + 1
        if -free < cost:
            return None  # the batch with the most room cannot take it: none can
        batches[b].append(message)
        if len(batches[b]) < MAX_BATCH_MESSAGES:
            heapq.heappush(room, (free + cost, b))
    for batch in batches:
        batch.sort(key=lambda m: m.index)
    batches.sort(key=lambda batch: batch[0].index)
    return batches


def push_batch_request(
    account_id: str, queue_id: str, batch: Sequence[PreparedMessage], delay: float | None
) -> ApiRequest:
    opening, closing = _batch_frame(delay)
    body = opening + b",".join(m.wire for m in batch) + closing
    if len(batch) > MAX_BATCH_MESSAGES or len(body) > MAX_BATCH_BYTES:  # a planner bug, never user input
        raise AssertionError(f"batch of {len(batch)} messages and {len(body)} bytes exceeds the limits")
    return ApiRequest("push_batch", "POST", queue_path(account_id, queue_id, "/messages/batch"), body)


@dataclass(frozen=True)
class PushStep:
    """
    One request of a push.

    :param indices: the positions (in the input) of the messages it carries.
    :param build: builds the request once the queue id is known.
    """

    indices: tuple[int, ...]
    build: Callable[[str], ApiRequest]


def push_requests(
    account_id: str, prepared: Sequence[PreparedMessage], delay: float | None, *, preserve_order: bool = False
) -> list[PushStep]:
    """The requests that push ``prepared``, as steps to build once the queue id is known."""
    capacity = batch_capacity(delay)
    steps: list[PushStep] = []
    for batch in plan_batches(prepared, delay, preserve_order=preserve_order):

        def build_batch(queue_id: str, batch: Sequence[PreparedMessage] = batch) -> ApiRequest:
            return push_batch_request(account_id, queue_id, batch, delay)

        steps.append(PushStep(tuple(m.index for m in batch), build_batch))
    for message in prepared:
        if len(message.wire) + 1 > capacity:
            single = message if delay is None or message.has_delay else _with_delay(message, delay)

            def build_single(queue_id: str, single: PreparedMessage = single) -> ApiRequest:
                return push_message_request(account_id, queue_id, single)

            steps.append(PushStep((message.index,), build_single))
    steps.sort(key=lambda step: step.indices[0])
    return steps


def _with_delay(message: PreparedMessage, delay: float) -> PreparedMessage:
    wire = message.wire[:-1] + f',"delay_seconds":{_format_number(delay)}}}'.encode()
    return PreparedMessage(message.index, wire, message.body_bytes, has_delay=True)


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
    )


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
        # the shape of AckRequest, written directly: lease ids are already checked strings
        retry_items = [
            {"lease_id": lease} if delay is None else {"lease_id": lease, "delay_seconds": delay}
            for lease, delay in chunk_retries
        ]
        body = _encode_json({"acks": [{"lease_id": lease} for lease in chunk_acks], "retries": retry_items}).encode()

        def build(queue_id: str, body: bytes = body) -> ApiRequest:
            return ApiRequest("ack", "POST", queue_path(account_id, queue_id, "/messages/ack"), body)

        steps.append(AckStep(chunk_acks, chunk_retries, build))
    return steps


# -- reads ---------------------------------------------------------------------------------------


def metrics_request(account_id: str, queue_id: str) -> ApiRequest:
    return ApiRequest("metrics", "GET", queue_path(account_id, queue_id, "/metrics"))


def get_queue_request(account_id: str, queue_id: str) -> ApiRequest:
    return ApiRequest("get_queue", "GET", queue_path(account_id, queue_id))


def list_consumers_request(account_id: str, queue_id: str) -> ApiRequest:
    return ApiRequest("list_consumers", "GET", queue_path(account_id, queue_id, "/consumers"))


def list_queues_request(account_id: str, page: int = 1, name: str | None = None) -> ApiRequest:
    params: tuple[tuple[str, str], ...] = (("page", str(page)), ("per_page", str(LIST_QUEUES_PER_PAGE)))
    if name is not None:
        params += (("name", validate_queue(name)),)
    return ApiRequest("list_queues", "GET", f"/accounts/{validate_account_id(account_id)}/queues", params=params)


# -- answers -------------------------------------------------------------------------------------

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
