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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..api.errors import CloudflareQueuesValidationError
from ..api.limits import MAX_BODY_BYTES
from ..api.models import OutgoingMessage, ReceivedMessage

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
