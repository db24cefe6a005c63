"""
pydantic models of the Cloudflare Queues API: what the client sends, what the API answers, and the
typed objects users get back (pulled messages with decoded bodies, operation results).

Answers are parsed tolerantly: unknown fields are kept, and the documented variations are accepted
(ack ``warnings`` as a list or a map, pull results as a bare list in the 2024 API, missing
``metadata.metrics`` before April 2026, numbers sent as floats).
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from typing_extensions import Required, TypedDict

from .errors import CloudflareQueuesResponseError
from .events import Event, EventReading, read_event

ContentType = Literal["text", "json"]


class _Answer(BaseModel):
    """Base of models parsed from the API: unknown fields are kept, never rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Request(BaseModel):
    """Base of request bodies: exactly the documented fields."""

    model_config = ConfigDict(extra="forbid")


# -- requests ----------------------------------------------------------------------------------


class OutgoingMessage(BaseModel):
    """
    A message to push, with its own content type and delay. Only instances of this class are read as
    message objects: a ``dict`` is always a body, whatever its keys.

    :param body: the message body: a ``str`` (sent as ``text``) or any JSON-serialisable value (sent
        as ``json``).
    :param content_type: ``"text"`` or ``"json"``; chosen from the body's type when ``None``.
    :param delay_seconds: whole seconds before the message can be delivered (0 to 86,400); overrides
        the batch's delay and the queue's delivery delay.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    body: Any
    content_type: ContentType | None = None
    delay_seconds: float | None = None


class PushMessageRequest(_Request):
    """Body of ``POST .../messages`` and one item of a batch."""

    body: Any
    content_type: ContentType
    delay_seconds: int | None = None


class PushBatchRequest(_Request):
    """Body of ``POST .../messages/batch``."""

    messages: list[PushMessageRequest]
    delay_seconds: int | None = None


class PullRequest(_Request):
    """Body of ``POST .../messages/pull``; omitted fields take the consumer's settings."""

    batch_size: int | None = None
    visibility_timeout_ms: int | None = None


class PeekRequest(_Request):
    """Body of ``POST .../messages/peek``."""

    batch_size: int | None = None


class RefItem(_Request):
    ref: str


class PurgeMessagesRequest(_Request):
    """Body of ``POST .../messages/purge``: the messages to delete, by the refs a peek gave."""

    refs: list[RefItem]


class AckItem(_Request):
    lease_id: str


class RetryItem(_Request):
    lease_id: str
    delay_seconds: int | None = None


class AckRequest(_Request):
    """Body of ``POST .../messages/ack``."""

    acks: list[AckItem] = Field(default_factory=list)
    retries: list[RetryItem] = Field(default_factory=list)


class QueueSettingsRequest(_Request):
    """The settings of a queue as ``POST``/``PATCH`` take them (whole seconds)."""

    delivery_delay: int | None = None
    delivery_paused: bool | None = None
    message_retention_period: int | None = None


class CreateQueueRequest(_Request):
    """Body of ``POST .../queues``."""

    queue_name: str
    settings: QueueSettingsRequest | None = None
    jurisdiction: Literal["eu", "us", "fedramp"] | None = None


class UpdateQueueRequest(_Request):
    """Body of ``PATCH .../queues/{id}``: only what is given changes."""

    settings: QueueSettingsRequest


class ConsumerSettingsRequest(_Request):
    """The settings of an HTTP pull consumer (retry delay in whole seconds, visibility in ms)."""

    batch_size: int | None = None
    max_retries: int | None = None
    retry_delay: int | None = None
    visibility_timeout_ms: int | None = None


class ConsumerRequest(_Request):
    """Body of ``POST .../consumers`` and ``PUT .../consumers/{id}`` for an HTTP pull consumer."""

    type: Literal["http_pull"] = "http_pull"
    dead_letter_queue: str | None = None
    settings: ConsumerSettingsRequest | None = None


class PurgeRequest(_Request):
    """Body of ``POST .../purge``: a purge cannot be undone, so the body must say so."""

    delete_messages_permanently: Literal[True] = True


# -- answers -----------------------------------------------------------------------------------


class QueueMetrics(_Answer):
    """
    Best-effort backlog metrics of a queue. ``observed_at_ms`` is when the service answered, by its own
    clock (its ``Date`` header; ``None`` when it sent none): ages are measured against it, so that a
    worker's clock skew (or an emulator's manual clock in tests) does not change them.
    """

    backlog_count: int = 0
    backlog_bytes: int = 0
    oldest_message_timestamp_ms: int = 0
    _observed_at_ms: int | None = PrivateAttr(default=None)

    @property
    def observed_at_ms(self) -> int | None:
        return self._observed_at_ms

    def observed_at(self, server_time_ms: int | None) -> QueueMetrics:
        """Record when the service answered (ms since the epoch, by its clock); returns ``self``."""
        self._observed_at_ms = server_time_ms
        return self

    @property
    def oldest_message_at(self) -> datetime | None:
        """When the oldest unacknowledged message was published (``None`` when unknown or empty)."""
        if not self.oldest_message_timestamp_ms:
            return None
        return datetime.fromtimestamp(self.oldest_message_timestamp_ms / 1000, tz=timezone.utc)


class ResultMetadata(_Answer):
    metrics: QueueMetrics | None = None


class QueueSettings(_Answer):
    delivery_delay: float | None = None
    delivery_paused: bool | None = None
    message_retention_period: float | None = None


class ConsumerSettings(_Answer):
    batch_size: int | None = None
    max_retries: int | None = None
    retry_delay: float | None = None
    visibility_timeout_ms: int | None = None
    max_concurrency: int | None = None
    max_wait_time_ms: int | None = None


class Consumer(_Answer):
    type: str
    consumer_id: str | None = None
    queue_name: str | None = None
    script_name: str | None = None
    dead_letter_queue: str | None = None
    created_on: str | None = None
    settings: ConsumerSettings = Field(default_factory=ConsumerSettings)


class R2NotificationRule(_Answer):
    """One R2 event-notification rule of a bucket (``ruleId`` set by the service)."""

    rule_id: str | None = Field(None, alias="ruleId")
    created_at: str | None = Field(None, alias="createdAt")
    actions: list[str] = Field(default_factory=list)
    prefix: str | None = None
    suffix: str | None = None
    description: str | None = None

    def same_filter(self, actions: Sequence[str], prefix: str | None, suffix: str | None) -> bool:
        """Whether this rule sends exactly these actions for exactly this prefix and suffix."""
        return (set(self.actions), self.prefix or "", self.suffix or "") == (set(actions), prefix or "", suffix or "")


class R2QueueRules(_Answer):
    """The rules that send a bucket's events to one queue."""

    queue_id: str | None = Field(None, alias="queueId")
    queue_name: str | None = Field(None, alias="queueName")
    rules: list[R2NotificationRule] = Field(default_factory=list)


class R2BucketRules(_Answer):
    """Every notification rule of a bucket, by queue."""

    bucket_name: str | None = Field(None, alias="bucketName")
    queues: list[R2QueueRules] = Field(default_factory=list)

    def of_queue(self, queue_id: str) -> list[R2NotificationRule]:
        return next((q.rules for q in self.queues if q.queue_id == queue_id), [])


class EventSubscription(_Answer):
    """An event subscription: a source's events sent to a queue (``destination``)."""

    id: str
    name: str
    enabled: bool = True
    source: dict[str, Any] = Field(default_factory=dict)
    events: list[str] = Field(default_factory=list)
    destination: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    modified_at: str | None = None

    @property
    def queue_id(self) -> str | None:
        """The destination queue's id."""
        value = self.destination.get("queue_id")
        return value if isinstance(value, str) else None


class Queue(_Answer):
    queue_id: str
    queue_name: str
    created_on: str | None = None
    modified_on: str | None = None
    consumers: list[Consumer] = Field(default_factory=list)
    consumers_total_count: int | None = None
    producers: list[dict[str, Any]] = Field(default_factory=list)
    producers_total_count: int | None = None
    settings: QueueSettings = Field(default_factory=QueueSettings)
    jurisdiction: str | None = None

    @property
    def http_pull_consumer(self) -> Consumer | None:
        """The queue's HTTP pull consumer, among however many consumers it has (``None`` without one)."""
        return next((c for c in self.consumers if c.type == "http_pull"), None)


class PurgeStatus(_Answer):
    """
    The last purge of a queue. Its shape is not settled: Cloudflare's SDKs type ``completed`` as a
    string, wrangler's own code reads a boolean ``complete``; :attr:`done` reads every form and refuses
    to guess on any other.

    :param started_at: when it started (``None`` before any purge).
    :param completed: whether it has finished: a boolean, ``"true"``/``"false"``, or a timestamp (when it
        finished); ``None`` while it runs.
    """

    started_at: str | None = None
    completed: Any = None

    @property
    def done(self) -> bool:
        """Whether the purge has finished; an answer in a shape this cannot read raises, naming the field."""
        field_name, value = "completed", self.completed
        if value is None and self.model_extra and "complete" in self.model_extra:
            field_name, value = "complete", self.model_extra["complete"]
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("true", "false"):
                return text == "true"
            if text and _is_timestamp(text):
                return True  # the time it completed
        raise CloudflareQueuesResponseError(
            f"the purge status has {field_name}={value!r}, which is neither a boolean, 'true'/'false' nor a "
            "timestamp: the client does not guess whether the purge completed",
            operation="purge_status",
        )


def _is_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("z", "+00:00"))
    except ValueError:
        return False
    return True


class ResultInfo(_Answer):
    count: int | None = None
    page: int | None = None
    per_page: int | None = None
    total_count: int | None = None
    total_pages: int | None = None


class PushAnswer(_Answer):
    metadata: ResultMetadata | None = None


class _WireMessageFields(TypedDict, total=False):
    """What pulled and peeked messages share as the API sends them (body still encoded)."""

    id: Required[str]
    body: str
    attempts: int
    metadata: dict[str, Any]
    timestamp_ms: int


class WireMessage(_WireMessageFields, total=False):
    """A pulled message as the API sends it. A TypedDict: this is the hot path."""

    lease_id: Required[str]


class PeekedWireMessage(_WireMessageFields, total=False):
    """A peeked message as the API sends it: a ``ref`` instead of a lease."""

    ref: Required[str]


class PeekAnswer(_Answer):
    messages: list[PeekedWireMessage] = Field(default_factory=list)


class PurgeMessagesAnswer(_Answer):
    """What a purge by reference answers: errors, and a warning per ref it did not purge."""

    errors: list[dict[str, Any]] = Field(default_factory=list)
    warnings: dict[str, str] = Field(default_factory=dict)

    @field_validator("warnings", mode="before")
    @classmethod
    def _no_warnings(cls, value: Any) -> Any:
        return {} if value is None else value


class PullAnswer(_Answer):
    message_backlog_count: int | None = None
    messages: list[WireMessage] = Field(default_factory=list)
    metadata: ResultMetadata | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: Any) -> Any:
        # the 2024 API answered with the bare array of messages
        return {"messages": value} if isinstance(value, list) else value


class AckAnswer(_Answer):
    ack_count: int = Field(0, alias="ackCount")
    retry_count: int = Field(0, alias="retryCount")
    warnings: dict[str, str] = Field(default_factory=dict)

    @field_validator("warnings", mode="before")
    @classmethod
    def _warnings_list(cls, value: Any) -> Any:
        # before 2026 the API sent warnings as a list of strings, without lease ids
        if value is None:
            return {}
        if isinstance(value, list):
            return {f"warning-{i}": str(text) for i, text in enumerate(value)}
        return value


ResultT = TypeVar("ResultT")


class Envelope(_Answer, Generic[ResultT]):
    """Cloudflare's answer envelope around every result."""

    success: bool = True
    errors: list[dict[str, Any]] = Field(default_factory=list)
    messages: list[Any] = Field(default_factory=list)
    result: ResultT | None = None
    result_info: ResultInfo | None = None


# -- what users get ----------------------------------------------------------------------------


if sys.version_info >= (3, 11):

    def _strict_b64decode(data: str) -> bytes:
        """Decode base64, refusing anything that is not strictly base64 (fast: no regular expression)."""
        return binascii.a2b_base64(data.encode("ascii"), strict_mode=True)

else:  # pragma: no cover - Python 3.10

    def _strict_b64decode(data: str) -> bytes:
        """Decode base64, refusing anything that is not strictly base64."""
        return base64.b64decode(data, validate=True)


def decode_body(raw: str, content_type: str) -> tuple[Any, str | None]:
    """
    Decode a pulled body by its ``CF-Content-Type``; return ``(body, error)``.

    ``text`` is the string itself; ``json`` is base64 of the JSON text as documented, or plain JSON
    text as the service has also been seen to send (both are accepted); ``bytes`` is base64 of the
    raw bytes. ``v8`` cannot be decoded outside Workers: the raw string is returned with an error.
    """
    if content_type == "text":
        return raw, None
    if content_type == "json":
        if raw[:1] not in ("{", "[", '"'):
            try:
                return json.loads(_strict_b64decode(raw).decode("utf-8")), None
            except (binascii.Error, UnicodeError, ValueError):
                pass
        try:
            return json.loads(raw), None
        except ValueError:
            return raw, "json body is neither base64 of JSON nor JSON text"
    if content_type == "bytes":
        try:
            return _strict_b64decode(raw), None
        except (binascii.Error, UnicodeError, ValueError):
            return raw, "bytes body is not valid base64"
    return raw, f"content type {content_type!r} cannot be decoded outside Cloudflare Workers"


class ReceivedMessage:
    """
    A message as a pull or a peek delivered it: what :class:`PulledMessage` (with its lease) and
    :class:`PeekedMessage` (with its ref) share. Its body is decoded on first access (``body``,
    ``decode_error``), so that pulling and acking without reading bodies costs no decoding. A plain
    slotted object, not a pydantic model: a pull of 100 messages builds 100 of them, and each is one
    object for Python's garbage collector to track instead of two (see ``docs/benchmarks.md``).
    Read-only; equal when every field is equal. :meth:`to_xcom` gives its JSON-safe form; Airflow's
    XCom serialization carries the object itself (:meth:`serialize` / :meth:`deserialize`).

    :param id: the message id (32 hex characters).
    :param attempts: deliveries so far (a pulled message: this one included, 1 on the first delivery).
    :param timestamp_ms: when the message was pushed, in ms since the epoch (``published_at``: as a datetime).
    :param content_type: ``text``, ``json``, ``bytes`` or ``v8``.
    :param raw_body: the body exactly as the API sent it.
    :param metadata: the API's metadata (``CF-Content-Type``, ``CF-sourceMessageSource``, ...).
    """

    __slots__ = ("_decoded", "attempts", "content_type", "id", "metadata", "raw_body", "timestamp_ms")
    __version__ = 1  # of serialize()'s form, for Airflow's XCom serialization
    #: the field that names this delivery to the service: ``lease_id`` or ``ref``
    HANDLE = ""

    id: str
    attempts: int
    timestamp_ms: int
    content_type: str
    raw_body: str
    metadata: dict[str, Any]
    _decoded: tuple[Any, str | None] | None

    def __init__(
        self,
        *,
        id: str,
        attempts: int = 0,
        timestamp_ms: int = 0,
        content_type: str = "json",
        raw_body: str = "",
        metadata: dict[str, Any] | None = None,
        **handle: str,
    ) -> None:
        if set(handle) != {self.HANDLE}:
            raise TypeError(f"{type(self).__name__} takes {self.HANDLE}=, got {', '.join(handle) or 'none'}")
        put = object.__setattr__
        put(self, "id", id)
        put(self, self.HANDLE, handle[self.HANDLE])
        put(self, "attempts", attempts)
        put(self, "timestamp_ms", timestamp_ms)
        put(self, "content_type", content_type)
        put(self, "raw_body", raw_body)
        put(self, "metadata", {} if metadata is None else metadata)
        put(self, "_decoded", None)

    @classmethod
    def from_wire(cls: type[MessageT], message: WireMessage | PeekedWireMessage) -> MessageT:
        """Build from a validated wire message (its ``metadata`` dict is taken over, not copied). This runs
        once per message of an answer: it sets the slots directly instead of going through ``__init__``."""
        metadata = message.get("metadata") or {}
        received = _new_object(cls)
        _set_id(received, message["id"])
        _SLOTS_OF[cls](received, message[cls.HANDLE])  # type: ignore[literal-required]
        _set_attempts(received, message.get("attempts", 0))
        _set_timestamp_ms(received, message.get("timestamp_ms", 0))
        _set_content_type(received, str(metadata.get("CF-Content-Type", "json")))
        _set_raw_body(received, message.get("body", ""))
        _set_metadata(received, metadata)
        _set_decoded(received, None)
        return received

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: a message is what the service delivered")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: a message is what the service delivered")

    @property
    def handle(self) -> str:
        """This delivery's ``lease_id`` or ``ref``."""
        return getattr(self, self.HANDLE)  # type: ignore[no-any-return]

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.handle,
            self.attempts,
            self.timestamp_ms,
            self.content_type,
            self.raw_body,
            self.metadata,
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.id, self.handle))

    def _decode(self) -> tuple[Any, str | None]:
        if self._decoded is None:
            object.__setattr__(self, "_decoded", decode_body(self.raw_body, self.content_type))
        return self._decoded  # type: ignore[return-value]

    @property
    def body(self) -> Any:
        """The decoded body: ``str`` (text), a JSON value (json), ``bytes`` (bytes), or the raw text."""
        return self._decode()[0]

    @property
    def decode_error(self) -> str | None:
        """Why the body could not be decoded (``body`` then holds the raw text), else ``None``."""
        return self._decode()[1]

    @property
    def event(self) -> Event | None:
        """
        The Cloudflare event this message carries: an
        :class:`~airflow_provider_cfqueues.api.events.R2ObjectEvent` (R2 event notification) or a
        :class:`~airflow_provider_cfqueues.api.events.SubscriptionEvent` (event subscription); ``None``
        for any other body, and :attr:`event_problem` says why.
        """
        return self._event_reading().event

    @property
    def event_problem(self) -> str | None:
        """Why :attr:`event` is ``None`` (not an event, a broken one, a newer schema version)."""
        return self._event_reading().problem

    def event_fields(self) -> dict[str, Any]:
        """
        The message trigger's payload additions: ``{"event": {...}}`` for an R2 event notification or an
        event-subscription event (``kind`` ``"r2"`` / ``"subscription"``), ``{"event_problem": "..."}``
        for a body that looks like one but breaks its shape (or has a newer schema version), else ``{}``.
        """
        reading = self._event_reading()
        if reading.event is not None:
            return {"event": reading.event.to_payload()}
        return {"event_problem": reading.problem} if reading.looked_like_one else {}

    def _event_reading(self) -> EventReading:
        if self.decode_error is not None:
            return EventReading(None, f"the body did not decode: {self.decode_error}")
        return read_event(self.body)

    @property
    def published_at(self) -> datetime:
        """When the message was pushed."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=timezone.utc)

    def to_xcom(self, *, lease: bool = True) -> dict[str, Any]:
        """
        JSON-safe primitives for XCom and trigger events: ``id``, the handle (``lease_id`` or ``ref``; a
        lease only with ``lease``), ``attempts``, ``timestamp_ms``, ``metadata``, ``content_type``, ``body``
        (``bytes`` bodies as standard base64), ``decode_error`` and ``published_at`` (ISO 8601, UTC).
        """
        body = self.body
        if isinstance(body, bytes):
            body = base64.b64encode(body).decode("ascii")
        form: dict[str, Any] = {"id": self.id}
        if lease or self.HANDLE != "lease_id":
            form[self.HANDLE] = self.handle
        form.update(
            attempts=self.attempts,
            timestamp_ms=self.timestamp_ms,
            metadata=self.metadata,
            content_type=self.content_type,
            body=body,
            decode_error=self.decode_error,
            published_at=self.published_at.isoformat().replace("+00:00", "Z"),
        )
        return form

    def serialize(self) -> dict[str, Any]:
        """Every field, for Airflow's XCom serialization (``airflow_provider_cfqueues.*`` must be allowed)."""
        return {
            "id": self.id,
            self.HANDLE: self.handle,
            "attempts": self.attempts,
            "timestamp_ms": self.timestamp_ms,
            "content_type": self.content_type,
            "raw_body": self.raw_body,
            "metadata": self.metadata,
        }

    @classmethod
    def deserialize(cls: type[MessageT], data: dict[str, Any], version: int) -> MessageT:
        """The message :meth:`serialize` gave (Airflow's XCom serialization calls it)."""
        if version > cls.__version__:
            raise TypeError(f"{cls.__name__} form {version} is newer than this provider reads ({cls.__version__})")
        return cls(**data)

    def __repr__(self) -> str:  # bodies can be large: show what identifies the message
        return f"{type(self).__name__}(id={self.id!r}, attempts={self.attempts}, content_type={self.content_type!r})"


MessageT = TypeVar("MessageT", bound=ReceivedMessage)


class PulledMessage(ReceivedMessage):
    """
    A leased message (see :class:`ReceivedMessage`).

    :param lease_id: the handle to ack or retry this delivery with.
    """

    __slots__ = ("lease_id",)
    HANDLE = "lease_id"
    lease_id: str


class PeekedMessage(ReceivedMessage):
    """
    A message a peek showed, without leasing it and without spending one of its delivery attempts (see
    :class:`ReceivedMessage`). It stays available to pulls and later peeks.

    :param ref: an opaque reference to this message, to purge it by (valid until the message is purged
        or delivered).
    """

    __slots__ = ("ref",)
    HANDLE = "ref"
    ref: str


_new_object = object.__new__
# the slots' own setters: ReceivedMessage.__setattr__ refuses every assignment
_SLOTS: Any = ReceivedMessage
_set_id = _SLOTS.id.__set__
_set_attempts = _SLOTS.attempts.__set__
_set_timestamp_ms = _SLOTS.timestamp_ms.__set__
_set_content_type = _SLOTS.content_type.__set__
_set_raw_body = _SLOTS.raw_body.__set__
_set_metadata = _SLOTS.metadata.__set__
_set_decoded = _SLOTS._decoded.__set__
_SLOTS_OF: dict[type[Any], Callable[[Any, str], None]] = {
    PulledMessage: cast(Any, PulledMessage).lease_id.__set__,
    PeekedMessage: cast(Any, PeekedMessage).ref.__set__,
}


class PushResult(BaseModel):
    """
    What a push did.

    :param queue_id: the queue's id (``None`` when there was nothing to push and the queue was named).
    :param messages: messages the service accepted.
    :param requests: HTTP requests it took (retries not counted).
    :param metrics: the queue's metrics from the last answer, when the API sent them.
    """

    queue_id: str | None
    messages: int
    requests: int
    metrics: QueueMetrics | None = None


class PullResult(BaseModel):
    """
    One pull: the leased messages and the backlog.

    :param messages: the leased messages (bodies decoded on first access).
    :param backlog_count: unacknowledged messages in the queue (``message_backlog_count``).
    :param metrics: the queue's metrics, when the API sent them.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    queue_id: str
    messages: list[PulledMessage]
    backlog_count: int | None = None
    metrics: QueueMetrics | None = None


class AckResult(BaseModel):
    """
    What an ack did.

    :param ack_count: leases acknowledged (the messages are deleted).
    :param retry_count: leases marked for retry.
    :param warnings: lease id -> the API's warning (late, duplicate or unknown lease ids).
    :param not_applied: lease id -> why: the leases the service did not confirm as acknowledged or
        retried (unknown or foreign lease ids, message ids given as lease ids, leases already acked,
        a retry that arrived after the lease expired). A warned lease that the counts show was
        applied anyway (a late ack) is not listed here.
    :param unconfirmed: lease id -> why: leases whose outcome is unknown, because the request was
        sent again after an attempt that got no answer, and the answer to the resent one did not
        count them (an ack the lost attempt applied is "already acknowledged" the second time).
    :param requests: HTTP requests it took.
    """

    ack_count: int = 0
    retry_count: int = 0
    warnings: dict[str, str] = Field(default_factory=dict)
    not_applied: dict[str, str] = Field(default_factory=dict)
    unconfirmed: dict[str, str] = Field(default_factory=dict)
    requests: int = 0


class PeekResult(BaseModel):
    """
    One peek: messages shown without being leased (each with its ``ref``).

    :param queue_id: the queue's id.
    :param messages: the peeked messages (bodies decoded on first access).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    queue_id: str
    messages: list[PeekedMessage]


class PurgeMessagesResult(BaseModel):
    """
    What a purge by reference did.

    :param purged: refs the service purged (those it sent no warning about).
    :param warnings: ref -> why it was not purged (unknown, or the message was delivered or purged since).
    :param errors: errors the answer listed.
    :param requests: HTTP requests it took (100 refs each).
    :param duplicates: refs given more than once (each sent, and counted, once).
    """

    purged: int = 0
    warnings: dict[str, str] = Field(default_factory=dict)
    errors: list[dict[str, Any]] = Field(default_factory=list)
    requests: int = 0
    duplicates: list[str] = Field(default_factory=list)
