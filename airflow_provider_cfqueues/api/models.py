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
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, computed_field, field_validator, model_validator
from typing_extensions import Required, TypedDict

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

    @property
    def http_pull_consumer(self) -> Consumer | None:
        return next((c for c in self.consumers if c.type == "http_pull"), None)


class PurgeStatus(_Answer):
    """
    The last purge of a queue.

    :param started_at: when it started (``None`` before any purge).
    :param completed: whether it has finished (the SDK types it as a string; both are read).
    """

    started_at: str | None = None
    completed: bool | str | None = None

    @property
    def done(self) -> bool:
        return self.completed is True or (isinstance(self.completed, str) and self.completed.lower() == "true")


class ResultInfo(_Answer):
    count: int | None = None
    page: int | None = None
    per_page: int | None = None
    total_count: int | None = None
    total_pages: int | None = None


class PushAnswer(_Answer):
    metadata: ResultMetadata | None = None


class WireMessage(TypedDict, total=False):
    """A pulled message as the API sends it (body still encoded). A TypedDict: this is the hot path."""

    id: Required[str]
    lease_id: Required[str]
    body: str
    attempts: int
    metadata: dict[str, Any]
    timestamp_ms: int


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


class PulledMessage(BaseModel):
    """
    A leased message. Its body is decoded on first access (``body``, ``decode_error``), so that
    pulling and acking without reading bodies costs no decoding; ``model_dump()`` includes both.

    :param id: the message id (32 hex characters).
    :param lease_id: the handle to ack or retry this delivery with.
    :param attempts: deliveries so far, this one included (1 on the first delivery).
    :param timestamp_ms: when the message was pushed, in ms since the epoch (``published_at``: as a datetime).
    :param content_type: ``text``, ``json``, ``bytes`` or ``v8``.
    :param raw_body: the body exactly as the API sent it.
    :param metadata: the API's metadata (``CF-Content-Type``, ``CF-sourceMessageSource``, ...).
    """

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64")

    id: str
    lease_id: str
    attempts: int
    timestamp_ms: int
    content_type: str
    raw_body: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_wire(cls, message: WireMessage) -> PulledMessage:
        """Build from a validated wire message, taking over (and reshaping) its dict: no copy, no re-validation."""
        values: dict[str, Any] = message  # type: ignore[assignment]
        values["raw_body"] = values.pop("body", "")
        values.setdefault("attempts", 0)
        values.setdefault("timestamp_ms", 0)
        metadata = values.setdefault("metadata", {})
        values["content_type"] = str(metadata.get("CF-Content-Type", "json"))
        pulled = cls.__new__(cls)  # this runs 100 times a pull: skip pydantic's validation
        object.__setattr__(pulled, "__dict__", values)
        object.__setattr__(pulled, "__pydantic_fields_set__", _PULLED_FIELDS)
        object.__setattr__(pulled, "__pydantic_extra__", None)
        object.__setattr__(pulled, "__pydantic_private__", None)
        return pulled

    @cached_property
    def _decoded(self) -> tuple[Any, str | None]:
        return decode_body(self.raw_body, self.content_type)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def body(self) -> Any:
        """The decoded body: ``str`` (text), a JSON value (json), ``bytes`` (bytes), or the raw text."""
        return self._decoded[0]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def decode_error(self) -> str | None:
        """Why the body could not be decoded (``body`` then holds the raw text), else ``None``."""
        return self._decoded[1]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def published_at(self) -> datetime:
        """When the message was pushed."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=timezone.utc)

    def to_xcom(self, *, lease: bool = True) -> dict[str, Any]:
        """JSON-safe primitives for XCom and trigger events (bytes bodies as base64), without
        ``raw_body``, and without ``lease_id`` unless ``lease``."""
        return self.model_dump(mode="json", exclude={"raw_body"} if lease else {"raw_body", "lease_id"})

    def __repr__(self) -> str:  # bodies can be large: show what identifies the message
        return f"PulledMessage(id={self.id!r}, attempts={self.attempts}, content_type={self.content_type!r})"


# shared by every PulledMessage built from the wire: a frozen model never changes its set fields
_PULLED_FIELDS = set(PulledMessage.model_fields)


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

    :param messages: the leased messages, bodies decoded.
    :param backlog_count: unacknowledged messages in the queue (``message_backlog_count``).
    :param metrics: the queue's metrics, when the API sent them.
    """

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
