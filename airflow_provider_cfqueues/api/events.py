"""
Messages that Cloudflare itself writes to a queue, read as typed events (pure: no I/O).

* **R2 event notifications** (a bucket's rule sends one message per object created or deleted)::

      {"account": "...", "action": "PutObject", "bucket": "uploads",
       "object": {"key": "in/2026-12-07.csv", "size": 1024, "eTag": "..."},
       "eventTime": "2026-12-07T03:00:00.000Z",
       "copySource": {"bucket": "...", "object": "..."}}        # CopyObject only

  -> :class:`R2ObjectEvent`.
* **Event subscriptions** (KV, Workflows, Workers AI, Vectorize, Images, Workers Builds, R2...)::

      {"type": "cf.workflows.workflow.instance.completed", "source": {...}, "payload": {...},
       "metadata": {"accountId": "...", "eventSubscriptionId": "...", "eventSchemaVersion": 1,
                    "eventTimestamp": "..."}}

  -> :class:`SubscriptionEvent`.

:func:`read_event` never raises: a body that is neither, or one that looks like an event but breaks
its documented shape (or has a newer schema version), gives ``event=None`` and the reason. Fields
the docs do not list are kept (``extra``). ``PulledMessage.event`` and the message trigger's payload
use it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import CloudflareQueuesValidationError

#: R2 actions that create an object, and those that delete one
R2_CREATE_ACTIONS = ("PutObject", "CopyObject", "CompleteMultipartUpload")
R2_DELETE_ACTIONS = ("DeleteObject", "LifecycleDeletion")
#: the event types of R2 notification rules, and the actions each covers
R2_EVENT_TYPES = {"object-create": R2_CREATE_ACTIONS, "object-delete": R2_DELETE_ACTIONS}
#: the event-subscription schema versions this provider reads
SUBSCRIPTION_SCHEMA_VERSIONS = (1,)


def expand_r2_actions(actions: object, what: str = "actions") -> list[str]:
    """
    R2 actions as a rule or a watcher names them: one or a list of ``PutObject``..., or the rule event
    types ``object-create`` / ``object-delete``, which expand to their actions. Anything else is refused.
    """
    if isinstance(actions, str):
        actions = [actions]
    known = (*R2_CREATE_ACTIONS, *R2_DELETE_ACTIONS, *R2_EVENT_TYPES)
    if not isinstance(actions, Sequence) or not actions or any(a not in known for a in actions):
        raise CloudflareQueuesValidationError(f"{what} take {', '.join(known)}, got {actions!r}")
    return list(dict.fromkeys(x for a in actions for x in R2_EVENT_TYPES.get(a, (a,))))


_R2_KEYS = {"account", "action", "bucket", "object", "eventTime", "copySource"}
_SUBSCRIPTION_KEYS = {"type", "source", "payload", "metadata"}
_METADATA_KEYS = {"accountId", "eventSubscriptionId", "eventSchemaVersion", "eventTimestamp"}


@dataclass(frozen=True)
class R2ObjectEvent:
    """
    One R2 event notification.

    :param account: the account id.
    :param bucket: the bucket.
    :param key: the object's key.
    :param action: ``PutObject``, ``CopyObject``, ``CompleteMultipartUpload``, ``DeleteObject`` or
        ``LifecycleDeletion`` (another action is kept as sent).
    :param size: the object's size in bytes (absent for deletes).
    :param etag: the object's eTag (absent when the service sends none).
    :param event_time: when it happened (``None`` when absent or unreadable: see ``extra``).
    :param copy_source_bucket: for ``CopyObject``, the bucket copied from.
    :param copy_source_key: for ``CopyObject``, the key copied from.
    :param extra: fields the docs do not list, as sent.
    """

    account: str
    bucket: str
    key: str
    action: str
    size: int | None = None
    etag: str | None = None
    event_time: datetime | None = None
    copy_source_bucket: str | None = None
    copy_source_key: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def created(self) -> bool:
        """The object was created (put, copied, or a multipart upload completed)."""
        return self.action in R2_CREATE_ACTIONS

    @property
    def deleted(self) -> bool:
        """The object was deleted (by a request or a lifecycle rule)."""
        return self.action in R2_DELETE_ACTIONS

    def to_payload(self) -> dict[str, Any]:
        """JSON-safe primitives (the message trigger's payload): ``kind`` is ``"r2"``."""
        return {
            "kind": "r2",
            "account": self.account,
            "bucket": self.bucket,
            "key": self.key,
            "action": self.action,
            "size": self.size,
            "etag": self.etag,
            "event_time": None if self.event_time is None else self.event_time.isoformat(),
            "copy_source": None
            if self.copy_source_bucket is None
            else {"bucket": self.copy_source_bucket, "key": self.copy_source_key},
        }


@dataclass(frozen=True)
class SubscriptionEvent:
    """
    One event of a Cloudflare event subscription.

    :param type: ``cf.<source>.<event>``, e.g. ``cf.workflows.workflow.instance.completed``.
    :param source: what sent it (``{"type": "workflows.workflow", "workflowName": ...}``).
    :param payload: the event's own fields.
    :param account_id: ``metadata.accountId``.
    :param subscription_id: ``metadata.eventSubscriptionId``.
    :param schema_version: ``metadata.eventSchemaVersion``.
    :param timestamp: ``metadata.eventTimestamp`` (``None`` when unreadable).
    :param extra: fields the docs do not list, as sent (metadata's under ``"metadata"``).
    """

    type: str
    source: Mapping[str, Any]
    payload: Any
    account_id: str | None
    subscription_id: str | None
    schema_version: int
    timestamp: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, pattern: str) -> bool:
        """Whether ``type`` matches ``pattern``: exact, or with ``*`` wildcards (``cf.workflows.*``)."""
        return fnmatch.fnmatchcase(self.type, pattern)

    def to_payload(self) -> dict[str, Any]:
        """JSON-safe primitives (the message trigger's payload): ``kind`` is ``"subscription"``."""
        return {
            "kind": "subscription",
            "type": self.type,
            "source": dict(self.source),
            "payload": self.payload,
            "account_id": self.account_id,
            "subscription_id": self.subscription_id,
            "schema_version": self.schema_version,
            "timestamp": None if self.timestamp is None else self.timestamp.isoformat(),
        }


Event = R2ObjectEvent | SubscriptionEvent


@dataclass(frozen=True)
class EventReading:
    """
    What :func:`read_event` made of a body.

    :param event: the event, or ``None``.
    :param problem: why there is none (``None`` with an event).
    :param looked_like_one: the body has the shape of an event but breaks it (a reason to log).
    """

    event: Event | None
    problem: str | None = None
    looked_like_one: bool = False


def read_event(body: object) -> EventReading:
    """The event a message body holds (a decoded JSON body), or why it holds none. Never raises."""
    if not isinstance(body, Mapping):
        return EventReading(None, f"the body is not a JSON object but {type(body).__name__}")
    if {"bucket", "object", "action"} <= body.keys():
        return _r2(body)
    if "type" in body and "metadata" in body:
        return _subscription(body)
    return EventReading(None, "neither an R2 event notification nor an event-subscription event")


def _r2(body: Mapping[str, Any]) -> EventReading:
    obj = body.get("object")
    problems = []
    for name, value in (
        ("account", body.get("account")),
        ("bucket", body.get("bucket")),
        ("action", body.get("action")),
    ):
        if not isinstance(value, str) or not value:
            problems.append(f"{name} is {value!r}")
    if not isinstance(obj, Mapping) or not isinstance(obj.get("key"), str):
        problems.append(f"object.key is missing (object: {obj!r:.60})")
        obj = {}
    size = obj.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        problems.append(f"object.size is {size!r}")
    etag = obj.get("eTag")
    if etag is not None and not isinstance(etag, str):
        problems.append(f"object.eTag is {etag!r}")
    copy = body.get("copySource")
    if copy is not None and not (isinstance(copy, Mapping) and isinstance(copy.get("bucket"), str)):
        problems.append(f"copySource is {copy!r:.60}")
        copy = None
    if problems:
        return EventReading(None, "an R2 event notification with " + ", ".join(problems), looked_like_one=True)
    extra = {k: v for k, v in body.items() if k not in _R2_KEYS}
    extra.update({f"object.{k}": v for k, v in obj.items() if k not in ("key", "size", "eTag")})
    event_time = _instant(body.get("eventTime"))
    if event_time is None and body.get("eventTime") is not None:
        extra["eventTime"] = body.get("eventTime")
    return EventReading(
        R2ObjectEvent(
            account=body["account"],
            bucket=body["bucket"],
            key=obj["key"],
            action=body["action"],
            size=size,
            etag=etag,
            event_time=event_time,
            copy_source_bucket=None if copy is None else copy["bucket"],
            copy_source_key=None if copy is None else _text(copy.get("object")),
            extra=extra,
        )
    )


def _subscription(body: Mapping[str, Any]) -> EventReading:
    kind, metadata = body.get("type"), body.get("metadata")
    if not isinstance(kind, str) or not kind.startswith("cf."):
        return EventReading(None, f"an event with type {kind!r}, not cf.<source>.<event>", looked_like_one=True)
    if not isinstance(metadata, Mapping):
        return EventReading(None, f"event {kind} has metadata {metadata!r:.60}, not an object", looked_like_one=True)
    version = metadata.get("eventSchemaVersion")
    if isinstance(version, bool) or not isinstance(version, int):
        return EventReading(None, f"event {kind} has eventSchemaVersion {version!r}", looked_like_one=True)
    if version not in SUBSCRIPTION_SCHEMA_VERSIONS:
        return EventReading(
            None,
            f"event {kind} has schema version {version}; this provider reads "
            f"{', '.join(map(str, SUBSCRIPTION_SCHEMA_VERSIONS))} (the body is still in message.body)",
            looked_like_one=True,
        )
    source = body.get("source")
    extra: dict[str, Any] = {k: v for k, v in body.items() if k not in _SUBSCRIPTION_KEYS}
    unknown_metadata = {k: v for k, v in metadata.items() if k not in _METADATA_KEYS}
    if unknown_metadata:
        extra["metadata"] = unknown_metadata
    return EventReading(
        SubscriptionEvent(
            type=kind,
            source=source if isinstance(source, Mapping) else {},
            payload=body.get("payload"),
            account_id=_text(metadata.get("accountId")),
            subscription_id=_text(metadata.get("eventSubscriptionId")),
            schema_version=version,
            timestamp=_instant(metadata.get("eventTimestamp")),
            extra=extra,
        )
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
