"""
Pushes as the wire carries them: each message validated and encoded once (:class:`PreparedMessage`),
then packed into batches of at most 100 messages and 256 KB *as serialized on the wire* (the batch
body is the concatenation of those bytes, so the size the planner counts is exactly the size sent).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast, overload

from .errors import CloudflareQueuesValidationError
from .limits import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_BODY_BYTES
from .models import OutgoingMessage
from .operations import PUSH_ANSWER, ApiRequest, queue_path
from .units import delay_seconds

_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


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


class PreparedMessages(Sequence[PreparedMessage]):
    """
    Validated messages encoded for the wire, kept as plain lists (position = index in the input):
    ``bytes``, ``int`` and ``bool`` are not tracked by Python's garbage collector, so a push of many
    messages adds no objects for it to scan, where one object per message would (and, in a process
    that holds Airflow, trigger full collections). Items read as :class:`PreparedMessage` views.
    """

    def __init__(self) -> None:
        self.wires: list[bytes] = []
        self.body_bytes: list[int] = []
        self.has_delay: list[bool] = []

    def append(self, message: PreparedMessage) -> None:
        self.wires.append(message.wire)
        self.body_bytes.append(message.body_bytes)
        self.has_delay.append(message.has_delay)

    def __len__(self) -> int:
        return len(self.wires)

    @overload
    def __getitem__(self, index: int) -> PreparedMessage: ...

    @overload
    def __getitem__(self, index: slice) -> list[PreparedMessage]: ...

    def __getitem__(self, index: int | slice) -> PreparedMessage | list[PreparedMessage]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        position = range(len(self))[index]
        return PreparedMessage(position, self.wires[position], self.body_bytes[position], self.has_delay[position])

    def costs(self) -> list[int]:
        """Each message's bytes in a batch: its wire form and one separator."""
        return [len(wire) + 1 for wire in self.wires]


def prepare_messages(messages: Iterable[object], default_content_type: str | None = None) -> PreparedMessages:
    """Validate and encode every message before anything is sent."""
    if isinstance(messages, (str, bytes, Mapping, OutgoingMessage)):
        raise CloudflareQueuesValidationError(
            "messages must be an iterable of bodies or OutgoingMessage objects; to push one body use "
            "push_message(), or wrap it in a list"
        )
    prepared = PreparedMessages()
    for index, item in enumerate(messages):
        prepared.append(prepare_message(index, item, default_content_type))
    return prepared


def push_message_request(account_id: str, queue_id: str, message: PreparedMessage) -> ApiRequest:
    return ApiRequest("push", "POST", queue_path(account_id, queue_id, "/messages"), message.wire, answer=PUSH_ANSWER)


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


def plan_batches(prepared: PreparedMessages, delay: float | None, *, preserve_order: bool = False) -> list[list[int]]:
    """
    Split messages into the fewest batches of at most 100 messages and 256 KB on the wire; a batch is
    the list of its messages' indices.

    Consecutive messages are packed in order first. When that needs more batches than the lower
    bound (by count and by bytes) and ``preserve_order`` is false, the planner looks for the smallest
    number of batches, from the lower bound up, into which the messages fit when each is placed,
    largest first, into the batch with the most room left (which balances bytes and counts). Cloudflare
    Queues does not guarantee delivery order either way. A message too large for any batch (JSON
    escaping can make it larger than 256 KB) travels alone as a single push (see :func:`push_requests`).
    """
    capacity = batch_capacity(delay)
    costs = prepared.costs()
    fitting = [i for i, cost in enumerate(costs) if cost <= capacity]
    in_order = _pack_in_order(fitting, costs, capacity)
    if preserve_order:
        return in_order
    for count in range(min_batches([costs[i] for i in fitting], capacity), len(in_order)):
        balanced = _pack_balanced(fitting, costs, count, capacity)
        if balanced is not None:
            return balanced
    return in_order


def _pack_in_order(indices: Sequence[int], costs: Sequence[int], capacity: int) -> list[list[int]]:
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index in indices:
        cost = costs[index]
        if current and (len(current) == MAX_BATCH_MESSAGES or used + cost > capacity):
            batches.append(current)
            current, used = [], 0
        current.append(index)
        used += cost
    if current:
        batches.append(current)
    return batches


def _pack_balanced(indices: Sequence[int], costs: Sequence[int], count: int, capacity: int) -> list[list[int]] | None:
    """Worst-fit decreasing into exactly ``count`` batches, or ``None`` when the messages do not fit."""
    batches: list[list[int]] = [[] for _ in range(count)]
    room = [(-capacity, b) for b in range(count)]  # a heap of (-free bytes, batch), batches with space left
    for index in sorted(indices, key=costs.__getitem__, reverse=True):
        if not room:
            return None
        free, b = heapq.heappop(room)
        cost = costs[index]
        if -free < cost:
            return None  # the batch with the most room cannot take it: none can
        batches[b].append(index)
        if len(batches[b]) < MAX_BATCH_MESSAGES:
            heapq.heappush(room, (free + cost, b))
    for batch in batches:
        batch.sort()
    batches.sort(key=lambda batch: batch[0])
    return batches


def push_batch_request(account_id: str, queue_id: str, wires: Sequence[bytes], delay: float | None) -> ApiRequest:
    """One batch push of messages already encoded for the wire."""
    opening, closing = _batch_frame(delay)
    body = opening + b",".join(wires) + closing
    if len(wires) > MAX_BATCH_MESSAGES or len(body) > MAX_BATCH_BYTES:  # a planner bug, never user input
        raise AssertionError(f"batch of {len(wires)} messages and {len(body)} bytes exceeds the limits")
    return ApiRequest(
        "push_batch", "POST", queue_path(account_id, queue_id, "/messages/batch"), body, answer=PUSH_ANSWER
    )


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
    account_id: str, prepared: PreparedMessages, delay: float | None, *, preserve_order: bool = False
) -> list[PushStep]:
    """The requests that push ``prepared``, as steps to build once the queue id is known."""
    capacity = batch_capacity(delay)
    wires = prepared.wires
    steps: list[PushStep] = []
    for batch in plan_batches(prepared, delay, preserve_order=preserve_order):
        indices = tuple(batch)

        def build_batch(queue_id: str, indices: tuple[int, ...] = indices) -> ApiRequest:
            return push_batch_request(account_id, queue_id, [wires[i] for i in indices], delay)

        steps.append(PushStep(indices, build_batch))
    for index, cost in enumerate(prepared.costs()):
        if cost > capacity:
            message = prepared[index]
            single = message if delay is None or message.has_delay else _with_delay(message, delay)

            def build_single(queue_id: str, single: PreparedMessage = single) -> ApiRequest:
                return push_message_request(account_id, queue_id, single)

            steps.append(PushStep((index,), build_single))
    steps.sort(key=lambda step: step.indices[0])
    return steps


def _with_delay(message: PreparedMessage, delay: float) -> PreparedMessage:
    wire = message.wire[:-1] + f',"delay_seconds":{_format_number(delay)}}}'.encode()
    return PreparedMessage(message.index, wire, message.body_bytes, has_delay=True)
