"""
Messages taken out of the flow: the rejection a ``process`` callable raises (or a batch returns), and
the envelope a poison copy travels in (pure: no I/O).

Cloudflare messages carry no user attributes, so a copy pushed to a poison queue (``on_poison``, the
message trigger's ``poison_queue``, or a consumer's dead-letter queue when ``process`` rejects a message)
carries its context in the body: a JSON object, versioned, whatever the original content type was
(docs/operators.md, "Poison envelope")::

    {
      "cfqueues_poison": 1,
      "reason": "rejected by process(): not JSON (line 1)",
      "source": {"queue": "orders", "queue_id": "9d3...", "message_id": "f21...", "attempts": 1,
                 "published_at": "2026-12-07T03:00:00Z", "content_type": "text"},
      "routed_by": {"dag_id": "load", "task_id": "drain", "run_id": "...", "map_index": -1},
      "routed_at": "2026-12-07T03:00:05Z",
      "body": "{not json"
    }

``body`` holds a text or JSON body as it was; a ``bytes`` or ``v8`` body, or one that did not decode,
is in ``raw_body`` instead, exactly as the service delivered it (base64 for ``bytes`` and ``v8``).
:meth:`PoisonEnvelope.read` reads one back, and :meth:`PoisonEnvelope.original` gives the original
message to push again once the cause is fixed.

Where poison goes
=================

Where poison goes (:class:`Router`): a queue, as copies in poison envelopes (:class:`QueueRoute`: the
drain's ``on_poison="<queue>"``, a rejection's dead-letter queue, the message trigger's
``poison_queue``), or the user's own callable (:class:`CallableRoute`). A router answers, message by
message, what it could not route; :func:`.fate.give_back` acks the rest.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from ..api.errors import (
    CloudflareQueuesConfigError,
    CloudflareQueuesError,
    CloudflareQueuesPushError,
    CloudflareQueuesValidationError,
)
from ..api.limits import MAX_BODY_BYTES
from ..api.models import OutgoingMessage, PulledMessage, ReceivedMessage

if TYPE_CHECKING:  # the hook is passed in: nothing here imports an Airflow class
    from ..hooks.queues import CloudflareQueuesHook


#: the key that marks a poison envelope, and its value: the envelope's version
ENVELOPE_KEY = "cfqueues_poison"
ENVELOPE_VERSION = 1
#: the longest reason an envelope keeps (an error message, a traceback's last line...)
MAX_REASON_CHARS = 2_000

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class RejectMessage(Exception):
    """
    Raise it from ``process`` to take a message out of the flow on this delivery, without spending its
    other delivery attempts: a message that can never succeed (malformed JSON, an unknown schema).

    The message goes to ``on_poison`` (or, without one, a copy goes to the consumer's dead-letter
    queue), in a poison envelope that keeps ``reason``; the original is then acked. With neither
    ``on_poison`` nor a dead-letter queue, the first rejection fails the task and the message is
    retried like any failure (nothing is acked on a guess).

    In ``process_mode="batch"``, raising it rejects every message of the batch; to reject some, return
    :class:`Rejected` items among the failed messages.

    :param reason: why, in words: kept in the envelope and the log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Rejected:
    """
    One message a batch ``process`` rejects (see :class:`RejectMessage`), returned among the failed ones.

    :param message: the message (a ``PulledMessage`` of the batch, or its ``id`` or ``lease_id``).
    :param reason: why, in words.
    """

    message: object
    reason: str


@dataclass(frozen=True)
class PoisonEnvelope:
    """
    A poison copy's body, read back (:meth:`read`) or about to be pushed (:meth:`wrap`).

    :param reason: why the message was taken out of the flow.
    :param source: the original: ``queue`` (as named by the task or trigger), ``queue_id``,
        ``message_id``, ``attempts`` (its deliveries, the one that routed it included),
        ``published_at`` (ISO 8601) and ``content_type``.
    :param routed_by: who routed it: ``dag_id``, ``task_id``, ``run_id``, ``map_index`` for a task;
        ``trigger`` and ``assets`` for the message trigger.
    :param routed_at: when (ISO 8601, UTC).
    :param body: the original text or JSON body (absent for ``bytes``/``v8`` bodies).
    :param raw_body: the original body as the service delivered it, when it is not text or JSON.
    :param version: the envelope's version.
    :param extra: keys a later version added, kept as they are.
    """

    reason: str
    source: Mapping[str, Any]
    routed_by: Mapping[str, Any]
    routed_at: str
    body: Any = None
    raw_body: str | None = None
    version: int = ENVELOPE_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def wrap(
        cls,
        message: ReceivedMessage,
        *,
        reason: str,
        queue: str,
        queue_id: str,
        routed_by: Mapping[str, Any],
        routed_at: datetime,
    ) -> OutgoingMessage:
        """
        The copy of ``message`` to push to a poison queue. A reason too long for the message limit is
        cut (it says so); when even the shortest envelope is over the limit, raise
        :class:`~airflow_provider_cfqueues.api.errors.CloudflareQueuesValidationError`: the original is
        then not acked, and the consumer's own retries and dead-letter queue apply to it.
        """
        source = {
            "queue": queue,
            "queue_id": queue_id,
            "message_id": message.id,
            "attempts": message.attempts,
            "published_at": message.published_at.isoformat().replace("+00:00", "Z"),
            "content_type": message.content_type,
        }
        envelope: dict[str, Any] = {
            ENVELOPE_KEY: ENVELOPE_VERSION,
            "reason": _cut(reason, MAX_REASON_CHARS),
            "source": source,
            "routed_by": dict(routed_by),
            "routed_at": routed_at.isoformat().replace("+00:00", "Z"),
        }
        if message.content_type in ("text", "json") and message.decode_error is None:
            envelope["body"] = message.body
        else:
            envelope["raw_body"] = message.raw_body
        size = len(_encode(envelope).encode())
        if size > MAX_BODY_BYTES:
            over = size - MAX_BODY_BYTES
            reason_bytes = len(envelope["reason"].encode())
            if over < reason_bytes - 40:
                envelope["reason"] = _cut(envelope["reason"], max(0, len(envelope["reason"]) - over - 40))
                size = len(_encode(envelope).encode())
            if size > MAX_BODY_BYTES:
                raise CloudflareQueuesValidationError(
                    f"the poison envelope of message {message.id} would be {size:,} bytes, over the "
                    f"{MAX_BODY_BYTES:,}-byte message limit (its body is within ~1 KB of the limit): it is not "
                    "routed, not acked, and left to the consumer's retries and dead-letter queue"
                )
        return OutgoingMessage(body=envelope, content_type="json")

    @classmethod
    def read(cls, message: ReceivedMessage | Mapping[str, Any]) -> PoisonEnvelope:
        """
        The envelope a poison queue's message holds (a pulled or peeked message, or its decoded body).
        Raises ``ValueError`` for a body that is not an envelope (a copy routed before envelopes
        existed, or a message pushed there by something else) or one of a newer version.
        """
        body = message.body if isinstance(message, ReceivedMessage) else message
        if not isinstance(body, Mapping) or ENVELOPE_KEY not in body:
            raise ValueError(f"not a poison envelope (no {ENVELOPE_KEY!r} key): {str(body)[:80]!r}")
        version = body[ENVELOPE_KEY]
        if not isinstance(version, int) or version > ENVELOPE_VERSION:
            raise ValueError(f"poison envelope version {version!r}; this provider reads up to {ENVELOPE_VERSION}")
        known = {ENVELOPE_KEY, "reason", "source", "routed_by", "routed_at", "body", "raw_body"}
        return cls(
            reason=str(body.get("reason", "")),
            source=dict(body.get("source") or {}),
            routed_by=dict(body.get("routed_by") or {}),
            routed_at=str(body.get("routed_at", "")),
            body=body.get("body"),
            raw_body=body.get("raw_body"),
            version=version,
            extra={k: v for k, v in body.items() if k not in known},
        )

    def original(self) -> OutgoingMessage:
        """
        The original message, to push again (to its source queue once the cause is fixed). A ``bytes``
        or ``v8`` body cannot be pushed over the HTTP API: ``raw_body`` holds it, and this raises.
        """
        content_type = self.source.get("content_type")
        if self.raw_body is not None or content_type not in ("text", "json"):
            raise CloudflareQueuesValidationError(
                f"message {self.source.get('message_id')} had a {content_type} body, which the HTTP API cannot "
                "push: its raw_body (base64 for bytes and v8) is in the envelope"
            )
        return OutgoingMessage(body=self.body, content_type=content_type)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 12)] + " [truncated]"


def check_poison_queue(option: str, named: str, poison_id: str | None, source_id: str, source: str) -> None:
    """
    Refuse a poison queue before anything is pulled: one that does not exist (``poison_id`` is ``None``),
    or the queue the messages come from (``source``: "drained", "watched"). The drain's ``on_poison`` and
    the message trigger's ``poison_queue`` say it the same way.
    """
    if poison_id is None:
        raise CloudflareQueuesConfigError(
            f"{option} names queue {named!r}, which does not exist; nothing was pulled",
            hint=f"create it first (`npx wrangler queues create {named}`), or fix the name",
        )
    if poison_id == source_id:
        raise CloudflareQueuesValidationError(
            f"{option} names {named!r}, the queue being {source}: route poison messages elsewhere"
        )


# -- where poison goes -------------------------------------------------------------------------------


#: each poison message with why it is routed
Poison = Sequence[tuple[PulledMessage, str]]


class Router(Protocol):
    """Routes poison messages; answers lease id -> why, for those it could not route."""

    def route(self, poison: Poison) -> Mapping[str, str]: ...


class QueueRoute:
    """
    Push each message, in a poison envelope with its reason, to queue ``target`` (id or name), in the
    fewest requests; sync (:meth:`route`) and async (:meth:`aroute`). A partial push is known message by
    message; an envelope over the size limit is not routed (its message is not acked).

    :param hook: the hook to push with (shared by the drain's workers: pushes take turns).
    :param target: the poison queue.
    :param source: the drained or watched queue, as named by the task or trigger.
    :param source_id: its id (looked up on first use when ``None``).
    :param routed_by: who routes (the envelope's ``routed_by``).
    :param clock: the envelope's ``routed_at``.
    """

    def __init__(
        self,
        hook: CloudflareQueuesHook,
        target: str,
        *,
        source: str,
        source_id: str | None = None,
        routed_by: Mapping[str, Any],
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.hook = hook
        self.target = target
        self.source = source
        self.source_id = source_id
        self.routed_by = routed_by
        self.clock = clock
        self._lock = threading.Lock()

    def route(self, poison: Poison) -> dict[str, str]:
        with self._lock:
            if self.source_id is None:
                try:
                    self.source_id = self.hook.resolve_queue_id(self.source)
                except CloudflareQueuesError as err:
                    return {m.lease_id: f"routing to {self.target} failed: {err}" for m, _ in poison}
            copies, sent, failed = self._copies(poison)
            if copies:
                try:
                    self.hook.push_messages(copies, queue=self.target)
                except CloudflareQueuesError as err:
                    failed.update(self._unpushed(sent, err))
            return failed

    async def aroute(self, poison: Poison) -> dict[str, str]:
        if self.source_id is None:
            try:
                self.source_id = (await self.hook.aget_queue(self.source)).queue_id
            except CloudflareQueuesError as err:
                return {m.lease_id: f"routing to {self.target} failed: {err}" for m, _ in poison}
        copies, sent, failed = self._copies(poison)
        if copies:
            try:
                await self.hook.apush_messages(copies, queue=self.target)
            except CloudflareQueuesError as err:
                failed.update(self._unpushed(sent, err))
        return failed

    def _copies(self, poison: Poison) -> tuple[list[OutgoingMessage], list[PulledMessage], dict[str, str]]:
        assert self.source_id is not None
        now = self.clock()
        copies: list[OutgoingMessage] = []
        sent: list[PulledMessage] = []
        failed: dict[str, str] = {}
        for message, reason in poison:
            try:
                copies.append(
                    PoisonEnvelope.wrap(
                        message,
                        reason=reason,
                        queue=self.source,
                        queue_id=self.source_id,
                        routed_by=self.routed_by,
                        routed_at=now,
                    )
                )
            except CloudflareQueuesValidationError as err:
                failed[message.lease_id] = str(err)
            else:
                sent.append(message)
        return copies, sent, failed

    def _unpushed(self, sent: list[PulledMessage], error: CloudflareQueuesError) -> dict[str, str]:
        pushed = set(error.pushed) if isinstance(error, CloudflareQueuesPushError) else set()
        why = f"routing to {self.target} failed: {error}"
        return {m.lease_id: why for i, m in enumerate(sent) if i not in pushed}


class CallableRoute:
    """
    The user's ``on_poison`` callable, called per message with the message, and with ``reason=`` when
    it takes that keyword. A message whose call raised is not routed.
    """

    def __init__(self, on_poison: Callable[..., Any]) -> None:
        self.on_poison = on_poison
        try:
            parameters = list(inspect.signature(on_poison).parameters.values())
        except (TypeError, ValueError):  # a builtin without a signature
            parameters = []
        self.takes_reason = any(p.name == "reason" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)

    def route(self, poison: Poison) -> dict[str, str]:
        failed: dict[str, str] = {}
        for message, reason in poison:
            try:
                if self.takes_reason:
                    self.on_poison(message, reason=reason)
                else:
                    self.on_poison(message)
            except Exception as err:
                failed[message.lease_id] = f"on_poison failed: {type(err).__name__}: {err}"
        return failed
