"""
The in-memory model of Cloudflare Queues behind the emulator: accounts, queues, consumers, messages
and leases, with the service's limits and delivery semantics. No HTTP here: :mod:`.app` turns
requests into calls on :class:`EmulatorState` and its answers into Cloudflare envelopes.

Semantics (see ``docs/emulator.md`` for the reasoning and the sources):

* A pull leases up to ``batch_size`` available messages for ``visibility_timeout_ms``; each delivery
  increments ``attempts`` (the first delivery has ``attempts == 1``). Leased messages are invisible
  to other pulls until acked, retried or the lease expires.
* An expired lease returns the message to the queue. A late ack of an expired lease still deletes the
  message (as the service does) and says so in ``warnings``; unknown and duplicate lease ids are
  ``warnings`` too, never errors. Counts are what actually happened.
* Retry boundary: ``max_retries`` counts *retries*, so a message is delivered at most
  ``max_retries + 1`` times. When a delivery with ``attempts >= max_retries + 1`` is retried or its
  lease expires, the message goes to the consumer's dead-letter queue (created if missing) or is
  deleted when there is none.
* Every operation first applies what the clock says happened since the last one: expired leases,
  retention expiry and dead-lettering. Nothing runs in the background, so a :class:`ManualClock`
  makes time fully deterministic.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import math
import re
import secrets
import threading
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .clock import Clock, SystemClock

# Limits of the service (shared/reference/cloudflare-queues-api.md §4). 1 KB = 1000 bytes.
MAX_MESSAGE_BYTES = 128_000
MESSAGE_METADATA_BYTES = 100  # the service counts ~100 B of internal metadata against each message
MAX_BODY_BYTES = MAX_MESSAGE_BYTES - MESSAGE_METADATA_BYTES
MAX_BATCH_BYTES = 256_000
MAX_BATCH_MESSAGES = 100
MAX_PULL_BATCH_SIZE = 100
DEFAULT_PULL_BATCH_SIZE = 5
DEFAULT_VISIBILITY_TIMEOUT_MS = 30_000
MAX_VISIBILITY_TIMEOUT_MS = 43_200_000
MAX_DELAY_SECONDS = 86_400
DEFAULT_MAX_RETRIES = 3
MAX_MAX_RETRIES = 100
DEFAULT_RETENTION_SECONDS = 345_600
MIN_RETENTION_SECONDS = 60
MAX_RETENTION_SECONDS = 1_209_600
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100

# The service answers 405 to a pull without an http_pull consumer; its error code is not documented.
PULL_NOT_ENABLED_CODE = 10116
# A pull on a paused queue gets 409 with a message stating ``queue_delivery_paused`` (§11); the code is
# not documented: the emulator uses 10252 (QueueDisabled, "delivery paused" in the error-code list).
PAUSED_CODE = 10252

# How a pull answers ``json`` bodies: the docs' prose says base64, their example and the live
# service also show plain JSON text (shared/reference §3, §11). "mixed" sends both, per message.
JSON_BODY_MODES = ("base64", "plain", "mixed")

# How long, and how many, finished lease ids a queue remembers, so that a duplicate or late ack is
# reported as such; one forgotten gets the answer of a lease never issued ("unknown lease id").
LEASE_MEMORY_SECONDS = 86_400.0
MAX_FINISHED_LEASES_KEPT = 100_000
#: a heap of a queue is rebuilt from its live messages once its stale entries outnumber them by this
STALE_HEAP_SLACK = 1_024

ID_RE = re.compile(r"[0-9a-f]{32}")  # use with fullmatch: "$" would accept a trailing newline
#: refs a queue remembers from its peeks (the oldest are forgotten first)
MAX_REFS_KEPT = 10_000
#: where a queue's data may live (``jurisdiction`` on create); a dead-letter queue the service makes follows it
JURISDICTIONS = ("eu", "us", "fedramp")
#: Cloudflare's rule for the name of a new queue (and of a dead-letter queue it creates): code 11003 otherwise
QUEUE_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
QUEUE_NAME_RULE = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_JWE_HEADER = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIn0"  # {"alg":"dir","enc":"A256CBC-HS512"}


class ApiError(Exception):
    """An error answer of the API: HTTP status, Cloudflare error code, message, and extra headers."""

    def __init__(self, status: int, code: int, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{status} [{code}] {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []


#: the version of the stats answer (``GET /accounts/{a}/emulator/stats``)
STATS_VERSION = 1


def new_id() -> str:
    """A 32-character lowercase hex id, like the service's queue, consumer and message ids."""
    return secrets.token_hex(16)


def new_lease_id() -> str:
    """An opaque, unguessable lease id shaped like the service's (compact JWE, five parts)."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(81)).decode()  # 648 random bits, 108 chars
    return f"{_JWE_HEADER}..{raw[:22]}.{raw[22:65]}.{raw[65:]}"


def iso_timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class StoredMessage:
    """One message in a queue's backlog. ``body`` is already encoded as a pull returns it."""

    id: str
    body: str
    content_type: str
    size: int
    timestamp_ms: int
    attempts: int = 0
    generation: int = 0
    lease_id: str | None = None
    lease_expires: float = 0.0
    visible_at: float = 0.0
    source: str = "api"

    def to_wire(self, json_bodies: str = "base64") -> dict[str, Any]:
        """The message as a pull returns it; ``json`` bodies base64-encoded or as plain JSON text."""
        body = self.body
        if self.content_type == "json" and (
            json_bodies == "plain" or (json_bodies == "mixed" and int(self.id[-1], 16) % 2 == 0)
        ):
            body = base64.b64decode(body).decode()
        return {
            "id": self.id,
            "body": body,
            "attempts": self.attempts,
            "lease_id": self.lease_id,
            "metadata": {"CF-Content-Type": self.content_type, "CF-sourceMessageSource": self.source},
            "timestamp_ms": self.timestamp_ms,
        }


@dataclass(slots=True)
class LeaseRecord:
    message_id: str
    issued_at: float
    outcome: str | None = None  # "acked", "retried", "expired" once the lease is finished


@dataclass
class ConsumerState:
    consumer_id: str
    type: str
    created_on: str
    settings: dict[str, Any]
    dead_letter_queue: str = ""
    script_name: str | None = None

    def to_wire(self, queue_name: str) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "consumer_id": self.consumer_id,
            "created_on": self.created_on,
            "dead_letter_queue": self.dead_letter_queue,
            "queue_name": queue_name,
            "settings": dict(self.settings),
            "type": self.type,
        }
        if self.script_name is not None:
            wire["script_name"] = self.script_name
        return wire


@dataclass
class Event:
    """
    One entry of the optional journal (``EmulatorState(record_events=True)``).

    :param kind: ``push``, ``deliver``, ``ack``, ``retry``, ``lease_expired``, ``dead_letter``, ``drop``,
        ``retention_expired``, ``lost_answer``, ``truncated_answer``, or a kind noted by a test.
    :param queue_id: the queue.
    :param message_ids: the messages concerned.
    :param lease_ids: the leases concerned.
    :param at: clock time.
    :param detail: kind-specific detail (e.g. the endpoint of a lost answer, ``late`` for a late ack).
    """

    kind: str
    queue_id: str
    message_ids: tuple[str, ...] = ()
    lease_ids: tuple[str, ...] = ()
    at: float = 0.0
    detail: str = ""


@dataclass
class QueueState:
    queue_id: str
    name: str
    account_id: str
    created_on: str
    modified_on: str
    settings: dict[str, Any]
    consumer: ConsumerState | None = None
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    available: list[tuple[float, int, str, int]] = field(default_factory=list)
    leased: list[tuple[float, int, str, int]] = field(default_factory=list)
    retention: list[tuple[float, str]] = field(default_factory=list)
    leases: dict[str, LeaseRecord] = field(default_factory=dict)
    #: (when, lease id) of finished leases (acked, retried, expired, message gone), oldest first
    finished: deque[tuple[float, str]] = field(default_factory=deque)
    backlog_bytes: int = 0
    ordered: bool = True  # messages dict is in timestamp order (false once a DLQ copy arrives)
    purge_started: str | None = None
    purge_pending: tuple[float, frozenset[str]] | None = None  # (completes at, ids present at its start)
    jurisdiction: str | None = None
    #: ref -> (message id, its generation when peeked): valid until the message is purged or delivered
    refs: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: journal kind -> messages it concerned, since the queue was created (always kept: a few ints)
    counts: Counter[str] = field(default_factory=Counter)

    def to_wire(self) -> dict[str, Any]:
        consumers = [self.consumer.to_wire(self.name)] if self.consumer else []
        extra = {} if self.jurisdiction is None else {"jurisdiction": self.jurisdiction}
        return {
            **extra,
            "queue_id": self.queue_id,
            "queue_name": self.name,
            "created_on": self.created_on,
            "modified_on": self.modified_on,
            "producers": [],
            "producers_total_count": 0,
            "consumers": consumers,
            "consumers_total_count": len(consumers),
            "settings": dict(self.settings),
        }

    def metrics(self) -> dict[str, int]:
        if not self.messages:
            oldest = 0
        elif self.ordered:
            oldest = next(iter(self.messages.values())).timestamp_ms
        else:
            oldest = min(m.timestamp_ms for m in self.messages.values())
        return {
            "backlog_count": len(self.messages),
            "backlog_bytes": self.backlog_bytes,
            "oldest_message_timestamp_ms": oldest,
        }

    @property
    def max_retries(self) -> int:
        if self.consumer is None:
            return DEFAULT_MAX_RETRIES
        return int(self.consumer.settings.get("max_retries", DEFAULT_MAX_RETRIES))


@dataclass(frozen=True)
class PushItem:
    """A validated message to enqueue: ``body`` already encoded as a pull will return it."""

    body: str
    content_type: str
    size: int
    delay_seconds: float | None = None


@dataclass(frozen=True)
class MessageView:
    """
    Read-only view of a message for tests: where it is and how often it was delivered.

    :param id: the message id.
    :param body: the body as a pull returns it (text, or base64).
    :param content_type: ``text``, ``json``, ``bytes`` or ``v8``.
    :param attempts: deliveries so far.
    :param state: ``available``, ``delayed`` or ``leased``.
    :param timestamp_ms: when it was pushed.
    :param visible_at: when it can (next) be delivered, in clock seconds.
    """

    id: str
    body: str
    content_type: str
    attempts: int
    state: str  # "available", "delayed" or "leased"
    timestamp_ms: int
    visible_at: float


class EmulatorState:
    """
    All accounts, queues and messages of one emulator, guarded by one lock.

    :param clock: where time comes from (:class:`SystemClock` by default; a ``ManualClock`` in tests).
    :param record_events: keep a journal of pushes, deliveries, acks, retries, expiries and lost
        answers in :attr:`events`, for tests that must explain every duplicate delivery.
    :param json_bodies: how pulls send ``json`` bodies: ``"base64"`` (as documented), ``"plain"``
        JSON text (as also seen live), or ``"mixed"`` (each message one way or the other).
    :param purge_seconds: how long a purge runs before its status reads completed; the messages
        stored when it started disappear when it completes (0: at once).
    :param max_retention_seconds: the longest retention a queue may have (14 days; 24 hours on the
        Free plan), also the cap of the default.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        record_events: bool = False,
        json_bodies: str = "base64",
        purge_seconds: float = 0.0,
        max_retention_seconds: int = MAX_RETENTION_SECONDS,
    ) -> None:
        self.max_retention_seconds = max_retention_seconds
        if not math.isfinite(purge_seconds) or purge_seconds < 0:
            raise ValueError(f"purge_seconds must be a number of seconds >= 0, got {purge_seconds!r}")
        self.purge_seconds = purge_seconds
        if json_bodies not in JSON_BODY_MODES:
            raise ValueError(f"json_bodies must be one of {', '.join(JSON_BODY_MODES)}, got {json_bodies!r}")
        self.json_bodies = json_bodies
        self.clock: Clock = clock or SystemClock()
        self.lock = threading.RLock()
        self.accounts: dict[str, dict[str, QueueState]] = {}
        self.record_events = record_events
        self.events: list[Event] = []
        self._seq = itertools.count()

    # -- accounts and queues -------------------------------------------------------------------

    def add_account(self, account_id: str) -> None:
        with self.lock:
            self.accounts.setdefault(account_id, {})

    def _account(self, account_id: str) -> dict[str, QueueState]:
        if not ID_RE.fullmatch(account_id):
            raise ApiError(
                400, 7003, f"Could not route to /accounts/{account_id}, perhaps your object identifier is invalid?"
            )
        queues = self.accounts.get(account_id)
        if queues is None:
            raise ApiError(403, 10000, "Authentication error")
        return queues

    def _queue(self, account_id: str, queue_id: str) -> QueueState:
        queues = self._account(account_id)
        if not ID_RE.fullmatch(queue_id):
            raise ApiError(400, 10107, "QueueIDMalformed: the queue id must be 32 hexadecimal characters")
        queue = queues.get(queue_id)
        if queue is None:
            raise ApiError(404, 10104, "QueueNotFound: queue not found")
        self._apply_time(queue, self.clock.now())
        return queue

    def create_queue(
        self, account_id: str, name: str, settings: dict[str, Any] | None = None, jurisdiction: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            queues = self._account(account_id)
            settings = settings if settings is not None else {}
            return self._create_queue(queues, account_id, name, settings, jurisdiction).to_wire()

    def _create_queue(
        self,
        queues: dict[str, QueueState],
        account_id: str,
        name: str,
        settings: dict[str, Any],
        jurisdiction: str | None = None,
    ) -> QueueState:
        _check_new_name(queues, name)
        if jurisdiction is not None and jurisdiction not in JURISDICTIONS:
            raise ApiError(400, 10207, f"jurisdiction must be one of {', '.join(JURISDICTIONS)}, got {jurisdiction!r}")
        now = iso_timestamp(self.clock.now())
        queue = QueueState(
            queue_id=new_id(),
            name=name,
            account_id=account_id,
            created_on=now,
            modified_on=now,
            settings=_queue_settings({}, settings, self.max_retention_seconds),
            jurisdiction=jurisdiction,
        )
        queues[queue.queue_id] = queue
        return queue

    def list_queues(
        self, account_id: str, *, page: int = 1, per_page: int = DEFAULT_PER_PAGE, names: Sequence[str] = ()
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        with self.lock:
            queues = list(self._account(account_id).values())
            total = len(queues)
            if names:
                queues = [q for q in queues if q.name in names]
            per_page = max(1, min(per_page, MAX_PER_PAGE))
            page = max(1, page)
            chunk = queues[(page - 1) * per_page : page * per_page]
            info = {
                "count": len(chunk),
                "page": page,
                "per_page": per_page,
                "total_count": total,
                "total_pages": max(1, -(-len(queues) // per_page)),
            }
            return [q.to_wire() for q in chunk], info

    def get_queue(self, account_id: str, queue_id: str) -> dict[str, Any]:
        with self.lock:
            return self._queue(account_id, queue_id).to_wire()

    def update_queue(
        self, account_id: str, queue_id: str, body: dict[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """``PATCH`` (merge the given settings) or, with ``replace``, ``PUT`` (settings not given go back
        to their defaults: the service does not support partial updates there)."""
        with self.lock:
            queues = self._account(account_id)
            queue = self._queue(account_id, queue_id)
            # everything is checked before anything changes: a bad setting leaves the queue as it was
            new_name = body.get("queue_name")
            renamed = new_name is not None and new_name != queue.name
            if renamed:
                _check_new_name(queues, new_name)
                if queue.consumer is not None and queue.consumer.dead_letter_queue == new_name:
                    raise ApiError(400, 100128, f"queue_name {new_name!r} is this queue's own dead letter queue")
            settings = _settings_object(body)
            old_retention = queue.settings["message_retention_period"]
            new_settings = _queue_settings({} if replace else queue.settings, settings, self.max_retention_seconds)
            if renamed:
                queue.name = str(new_name)
            queue.settings = new_settings
            if queue.settings["message_retention_period"] != old_retention:
                self._rebuild_retention(queue)
            queue.modified_on = iso_timestamp(self.clock.now())
            return queue.to_wire()

    def delete_queue(self, account_id: str, queue_id: str) -> None:
        with self.lock:
            self._queue(account_id, queue_id)
            del self.accounts[account_id][queue_id]

    # -- consumers -----------------------------------------------------------------------------

    def create_consumer(self, account_id: str, queue_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            queue = self._queue(account_id, queue_id)
            if queue.consumer is not None:
                raise ApiError(
                    409, 11004, "this queue already has a consumer; a queue can have only one active consumer"
                )
            queue.consumer = self._consumer_from(queue, body, new_id(), iso_timestamp(self.clock.now()))
            self._ensure_dead_letter_queue(queue)
            return queue.consumer.to_wire(queue.name)

    def update_consumer(self, account_id: str, queue_id: str, consumer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT``: the body is the whole consumer, as for create; settings not given take their defaults."""
        with self.lock:
            queue = self._queue(account_id, queue_id)
            current = self._consumer(queue, consumer_id)
            queue.consumer = self._consumer_from(queue, body, current.consumer_id, current.created_on)
            self._ensure_dead_letter_queue(queue)
            return queue.consumer.to_wire(queue.name)

    def _ensure_dead_letter_queue(self, queue: QueueState) -> None:
        """A consumer that names a dead-letter queue that does not exist makes the service create it, at
        configuration time ("Cloudflare automatically creates that queue", dead-letter-queues.mdx)."""
        name = queue.consumer.dead_letter_queue if queue.consumer else ""
        queues = self.accounts[queue.account_id]
        if name and not any(q.name == name for q in queues.values()):
            self._create_queue(queues, queue.account_id, name, {}, queue.jurisdiction)

    def _consumer_from(
        self, queue: QueueState, body: dict[str, Any], consumer_id: str, created_on: str
    ) -> ConsumerState:
        kind = body.get("type")
        if kind not in ("http_pull", "worker"):
            raise ApiError(400, 100127, 'consumer "type" must be "http_pull" or "worker"')
        script_name = body.get("script_name")
        if kind == "worker" and not isinstance(script_name, str):
            raise ApiError(400, 100127, 'a worker consumer needs "script_name"')
        dlq = body.get("dead_letter_queue") or ""
        if dlq and not isinstance(dlq, str):
            raise ApiError(400, 100127, "dead_letter_queue must be a queue name")
        if dlq and not QUEUE_NAME_RE.fullmatch(dlq):
            raise ApiError(400, 11003, f"invalid queue name: {dlq}. Must match {QUEUE_NAME_RULE}")
        if dlq == queue.name:
            raise ApiError(400, 100127, "a queue cannot be its own dead letter queue")
        settings = _settings_object(body)
        return ConsumerState(
            consumer_id=consumer_id,
            type=kind,
            created_on=created_on,
            settings=_consumer_settings(kind, settings),
            dead_letter_queue=dlq,
            script_name=script_name if kind == "worker" else None,
        )

    def list_consumers(self, account_id: str, queue_id: str) -> list[dict[str, Any]]:
        with self.lock:
            queue = self._queue(account_id, queue_id)
            return [queue.consumer.to_wire(queue.name)] if queue.consumer else []

    def _consumer(self, queue: QueueState, consumer_id: str) -> ConsumerState:
        if not ID_RE.fullmatch(consumer_id):
            raise ApiError(
                400, 7003, f"Could not route to consumer {consumer_id}, perhaps your object identifier is invalid?"
            )
        if queue.consumer is None or queue.consumer.consumer_id != consumer_id:
            raise ApiError(404, 11000, "consumer not found")
        return queue.consumer

    def get_consumer(self, account_id: str, queue_id: str, consumer_id: str) -> dict[str, Any]:
        with self.lock:
            queue = self._queue(account_id, queue_id)
            return self._consumer(queue, consumer_id).to_wire(queue.name)

    def delete_consumer(self, account_id: str, queue_id: str, consumer_id: str) -> None:
        with self.lock:
            queue = self._queue(account_id, queue_id)
            self._consumer(queue, consumer_id)
            queue.consumer = None

    # -- purge ---------------------------------------------------------------------------------

    def purge(self, account_id: str, queue_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """
        Start deleting every stored message (irreversible). Returns the queue.

        The messages stored now disappear when the purge completes, ``purge_seconds`` later (at
        once by default); messages pushed meanwhile stay.
        """
        with self.lock:
            queue = self._queue(account_id, queue_id)
            if body.get("delete_messages_permanently") is not True:
                raise ApiError(400, 10207, 'JSONRequestBodyInvalid: a purge needs "delete_messages_permanently": true')
            now = self.clock.now()
            earlier = queue.purge_pending[1] if queue.purge_pending else frozenset()
            queue.purge_pending = (now + self.purge_seconds, earlier | frozenset(queue.messages))
            queue.purge_started = iso_timestamp(now)
            self._apply_time(queue, now)
            return queue.to_wire()

    def purge_status(self, account_id: str, queue_id: str) -> dict[str, Any]:
        """The last purge: when it started and whether it completed (nulls before any purge)."""
        with self.lock:
            queue = self._queue(account_id, queue_id)
            started = queue.purge_started
            if started is None:
                return {"started_at": None, "completed": None}
            return {"started_at": started, "completed": queue.purge_pending is None}

    # -- messages ------------------------------------------------------------------------------

    def push(
        self, account_id: str, queue_id: str, items: Sequence[PushItem], batch_delay: float | None = None
    ) -> tuple[dict[str, int], list[str]]:
        """Enqueue validated messages; return the metrics after the push and the new message ids."""
        with self.lock:
            queue = self._queue(account_id, queue_id)
            now = self.clock.now()
            ids = [self._enqueue(queue, item, now, batch_delay) for item in items]
            self._event("push", queue, message_ids=tuple(ids), at=now)
            return queue.metrics(), ids

    def inject(
        self, account_id: str, queue_id: str, body: bytes | str, content_type: str, source: str = "worker"
    ) -> str:
        """Enqueue a message as a Worker producer would, including ``bytes`` and ``v8`` content types."""
        raw = body.encode() if isinstance(body, str) else body
        encoded = body if content_type == "text" and isinstance(body, str) else base64.b64encode(raw).decode()
        item = PushItem(body=encoded, content_type=content_type, size=len(raw))
        with self.lock:
            queue = self._queue(account_id, queue_id)
            now = self.clock.now()
            message_id = self._enqueue(queue, item, now, None, source=source)
            self._event("push", queue, message_ids=(message_id,), at=now)
            return message_id

    def _enqueue(
        self, queue: QueueState, item: PushItem, now: float, batch_delay: float | None, source: str = "api"
    ) -> str:
        delay = item.delay_seconds
        if delay is None:
            delay = batch_delay
        if delay is None:
            delay = queue.settings["delivery_delay"]
        message = StoredMessage(
            id=new_id(),
            body=item.body,
            content_type=item.content_type,
            size=item.size,
            timestamp_ms=int(now * 1000),
            visible_at=now + delay,
            source=source,
        )
        self._insert(queue, message)
        return message.id

    def _insert(self, queue: QueueState, message: StoredMessage) -> None:
        if queue.messages and message.timestamp_ms < next(reversed(queue.messages.values())).timestamp_ms:
            queue.ordered = False
        queue.messages[message.id] = message
        queue.backlog_bytes += message.size
        seq = next(self._seq)
        heapq.heappush(queue.available, (message.visible_at, seq, message.id, message.generation))
        expiry = message.timestamp_ms / 1000 + queue.settings["message_retention_period"]
        heapq.heappush(queue.retention, (expiry, message.id))

    def pull(
        self, account_id: str, queue_id: str, batch_size: int | None, visibility_timeout_ms: float | None
    ) -> dict[str, Any]:
        with self.lock:
            queue = self._queue(account_id, queue_id)
            consumer = queue.consumer
            if consumer is None or consumer.type != "http_pull":
                raise ApiError(405, PULL_NOT_ENABLED_CODE, "messages cannot be pulled unless http_pull mode is enabled")
            settings = consumer.settings
            size = int(batch_size if batch_size is not None else settings["batch_size"])
            timeout_ms = (
                visibility_timeout_ms if visibility_timeout_ms is not None else settings["visibility_timeout_ms"]
            )
            if queue.settings["delivery_paused"]:
                raise ApiError(
                    409,
                    PAUSED_CODE,
                    "queue_delivery_paused: delivery of this queue is paused; resume it to pull messages",
                )
            now = self.clock.now()
            expires = now + timeout_ms / 1000
            delivered: list[dict[str, Any]] = []
            while queue.available and queue.available[0][0] <= now and len(delivered) < size:
                _, seq, message_id, generation = heapq.heappop(queue.available)
                message = queue.messages.get(message_id)
                if message is None or message.generation != generation:
                    continue
                message.attempts += 1
                message.generation += 1
                message.lease_id = new_lease_id()
                message.lease_expires = expires
                heapq.heappush(queue.leased, (expires, seq, message_id, message.generation))
                queue.leases[message.lease_id] = LeaseRecord(message_id, now)
                delivered.append(message.to_wire(self.json_bodies))
            if delivered:
                self._event(
                    "deliver",
                    queue,
                    message_ids=tuple(m["id"] for m in delivered),
                    lease_ids=tuple(m["lease_id"] for m in delivered),
                    at=now,
                )
            metrics = queue.metrics()
            return {
                "message_backlog_count": metrics["backlog_count"],
                "messages": delivered,
                "metadata": {"metrics": metrics},
            }

    def peek(self, account_id: str, queue_id: str, batch_size: int | None) -> dict[str, Any]:
        """
        Up to ``batch_size`` available messages, in the order a pull would deliver them, each with a ref:
        nothing is leased, no attempt is spent, and the messages stay available.
        """
        with self.lock:
            queue = self._queue(account_id, queue_id)
            size = batch_size if batch_size is not None else DEFAULT_PULL_BATCH_SIZE
            now = self.clock.now()
            shown: list[dict[str, Any]] = []
            for visible_at, _, message_id, generation in sorted(queue.available):
                if visible_at > now or len(shown) >= size:
                    break
                message = queue.messages.get(message_id)
                if message is None or message.generation != generation:
                    continue
                ref = new_lease_id()
                queue.refs[ref] = (message_id, generation)
                wire = message.to_wire(self.json_bodies)
                del wire["lease_id"]
                shown.append({**wire, "ref": ref})
            while len(queue.refs) > MAX_REFS_KEPT:  # the oldest refs are forgotten first
                del queue.refs[next(iter(queue.refs))]
            return {"messages": shown}

    def purge_messages(self, account_id: str, queue_id: str, refs: list[str]) -> dict[str, Any]:
        """
        Delete the messages of ``refs``. Not a delivery: no attempt is counted. A ref whose message was
        delivered since the peek (or purged, or never peeked) is left alone, with a warning.
        """
        with self.lock:
            queue = self._queue(account_id, queue_id)
            warnings: dict[str, str] = {}
            purged: list[str] = []
            for ref in refs:
                entry = queue.refs.pop(ref, None)
                message = queue.messages.get(entry[0]) if entry else None
                if entry is None:
                    warnings[ref] = "unknown ref: not from a peek of this queue, or already used"
                elif message is None:
                    warnings[ref] = "the message is no longer in the queue"
                elif message.generation != entry[1]:
                    warnings[ref] = "the message was delivered after it was peeked: ack or retry its lease instead"
                else:
                    self._delete(queue, message)
                    purged.append(message.id)
            if purged:
                self._event("purge", queue, message_ids=tuple(purged), at=self.clock.now(), detail="by ref")
            return {"errors": [], "warnings": warnings}

    def ack(
        self,
        account_id: str,
        queue_id: str,
        acks: Sequence[str],
        retries: Sequence[tuple[str, float | None]],
    ) -> dict[str, Any]:
        with self.lock:
            queue = self._queue(account_id, queue_id)
            now = self.clock.now()
            warnings: dict[str, str] = {}
            ack_count = retry_count = 0
            for lease_id in acks:
                message = self._leased_message(queue, lease_id, warnings)
                if message is None:
                    continue
                record = queue.leases[lease_id]
                if message.lease_id != lease_id:
                    warnings[lease_id] = (
                        "lease expired before this acknowledgement; the message was acknowledged anyway"
                    )
                self._finish(queue, lease_id, "acked", now)
                self._delete(queue, message)
                ack_count += 1
                self._event("ack", queue, (message.id,), (lease_id,), now, "late" if lease_id in warnings else "")
            for lease_id, delay in retries:
                message = self._leased_message(queue, lease_id, warnings)
                if message is None:
                    continue
                record = queue.leases[lease_id]
                if message.lease_id != lease_id:
                    record.outcome = "expired"
                    warnings[lease_id] = (
                        "lease expired before this retry; the message had already returned to the queue"
                    )
                    continue
                self._finish(queue, lease_id, "retried", now)
                retry_count += 1
                self._event("retry", queue, (message.id,), (lease_id,), now)
                self._release(queue, message, now, delay)
            return {"ackCount": ack_count, "retryCount": retry_count, "warnings": warnings}

    def _leased_message(self, queue: QueueState, lease_id: str, warnings: dict[str, str]) -> StoredMessage | None:
        record = queue.leases.get(lease_id)
        if record is None:
            warnings[lease_id] = "unknown lease id (never issued for this queue, or forgotten)"
            return None
        if record.outcome in ("acked", "retried"):
            warnings[lease_id] = f"lease already {record.outcome}; ignored"
            return None
        message = queue.messages.get(record.message_id)
        if message is None:
            warnings[lease_id] = (
                "the message is no longer in the queue (acknowledged through another lease, dead-lettered or expired)"
            )
            return None
        return message

    def _release(self, queue: QueueState, message: StoredMessage, now: float, delay: float | None) -> None:
        """Return a message whose delivery failed (retry or lease expiry) to the queue, or dead-letter it."""
        message.lease_id = None
        message.generation += 1
        if message.attempts >= queue.max_retries + 1:
            self._dead_letter(queue, message, now)
            return
        if delay is None:
            delay = queue.consumer.settings.get("retry_delay", 0) if queue.consumer else 0
        message.visible_at = now + delay
        heapq.heappush(queue.available, (message.visible_at, next(self._seq), message.id, message.generation))

    def _dead_letter(self, queue: QueueState, message: StoredMessage, now: float) -> None:
        self._delete(queue, message)
        dlq_name = queue.consumer.dead_letter_queue if queue.consumer else ""
        if not dlq_name:
            self._event("drop", queue, (message.id,), at=now, detail="max_retries reached, no dead letter queue")
            return
        queues = self.accounts[queue.account_id]
        target = next((q for q in queues.values() if q.name == dlq_name), None)
        if target is None:
            target = self._create_queue(queues, queue.account_id, dlq_name, {}, queue.jurisdiction)
        # the target's own lease expiries are applied when it is next used, not from here: applying them
        # now could dead-letter back into this queue (a cycle A -> B -> A), and so on without end
        copy = StoredMessage(
            id=message.id,
            body=message.body,
            content_type=message.content_type,
            size=message.size,
            timestamp_ms=message.timestamp_ms,
            visible_at=now,
            source=message.source,
        )
        self._insert(target, copy)
        self._event("dead_letter", queue, (message.id,), at=now, detail=target.queue_id)

    def _delete(self, queue: QueueState, message: StoredMessage) -> None:
        del queue.messages[message.id]
        queue.backlog_bytes -= message.size
        record = queue.leases.get(message.lease_id or "")
        if record is not None and record.outcome is None:  # purged or expired while leased
            self._finish(queue, message.lease_id or "", "gone", self.clock.now())

    def metrics(self, account_id: str, queue_id: str) -> dict[str, int]:
        with self.lock:
            return self._queue(account_id, queue_id).metrics()

    # -- time ----------------------------------------------------------------------------------

    def _apply_time(self, queue: QueueState, now: float) -> None:
        """Apply lease expiries and retention expiry that happened up to ``now``."""
        retention = queue.settings["message_retention_period"]
        while queue.retention and queue.retention[0][0] <= now:
            _, message_id = heapq.heappop(queue.retention)
            message = queue.messages.get(message_id)
            if message is not None and message.timestamp_ms / 1000 + retention <= now:
                self._delete(queue, message)
                self._event("retention_expired", queue, (message_id,), at=now)
        while queue.leased and queue.leased[0][0] <= now:
            expired_at, _, message_id, generation = heapq.heappop(queue.leased)
            message = queue.messages.get(message_id)
            if message is None or message.generation != generation:
                continue
            self._finish(queue, message.lease_id or "", "expired", expired_at)
            self._event("lease_expired", queue, (message_id,), (message.lease_id or "",), expired_at)
            self._release(queue, message, expired_at, None)  # the consumer's retry_delay applies (§11)
        if queue.purge_pending is not None and queue.purge_pending[0] <= now:
            completes_at, doomed = queue.purge_pending
            queue.purge_pending = None
            purged = tuple(m for m in doomed if m in queue.messages)
            for message_id in purged:
                self._delete(queue, queue.messages[message_id])
            self._event("purge", queue, message_ids=purged, at=completes_at)
        finished = queue.finished
        while finished and (finished[0][0] + LEASE_MEMORY_SECONDS <= now or len(finished) > MAX_FINISHED_LEASES_KEPT):
            _, lease_id = finished.popleft()
            record = queue.leases.get(lease_id)
            if record is not None and record.outcome is not None:
                del queue.leases[lease_id]
        self._compact(queue)

    def _finish(self, queue: QueueState, lease_id: str, outcome: str, now: float) -> None:
        """A lease ended: remembered (for duplicate and late acks) within the bounds of ``finished``."""
        record = queue.leases.get(lease_id)
        if record is not None:
            record.outcome = outcome
            queue.finished.append((now, lease_id))

    def _compact(self, queue: QueueState) -> None:
        """
        Rebuild a heap whose stale entries (of messages acked, retried or deleted since) outnumber the live
        ones: memory follows the backlog, not the traffic. Amortized O(1) per message.
        """
        live = len(queue.messages)
        limit = 2 * live + STALE_HEAP_SLACK
        if len(queue.retention) > limit:
            self._rebuild_retention(queue)
        if len(queue.leased) > limit:
            queue.leased = [
                (m.lease_expires, next(self._seq), m.id, m.generation)
                for m in queue.messages.values()
                if m.lease_id is not None
            ]
            heapq.heapify(queue.leased)
        if len(queue.available) > limit:
            queue.available = [
                (m.visible_at, next(self._seq), m.id, m.generation)
                for m in queue.messages.values()
                if m.lease_id is None
            ]
            heapq.heapify(queue.available)

    def _rebuild_retention(self, queue: QueueState) -> None:
        retention = queue.settings["message_retention_period"]
        queue.retention = [(m.timestamp_ms / 1000 + retention, m.id) for m in queue.messages.values()]
        heapq.heapify(queue.retention)

    def _event(
        self,
        kind: str,
        queue: QueueState,
        message_ids: tuple[str, ...] = (),
        lease_ids: tuple[str, ...] = (),
        at: float = 0.0,
        detail: str = "",
    ) -> None:
        queue.counts[kind] += len(message_ids) or 1
        if self.record_events:
            self.events.append(Event(kind, queue.queue_id, message_ids, lease_ids, at, detail))

    def stats(self, account_id: str) -> dict[str, Any]:
        """
        The counters of every queue of the account (``GET /accounts/{a}/emulator/stats``; the answer's
        ``version`` changes only when a field changes meaning or goes).
        """
        with self.lock:
            now = self.clock.now()
            queues = []
            for queue in list(self._account(account_id).values()):  # dead-lettering may add a queue
                self._apply_time(queue, now)
                counts = queue.counts
                queues.append(
                    {
                        "queue_id": queue.queue_id,
                        "queue_name": queue.name,
                        "pushed": counts["push"],
                        "delivered": counts["deliver"],
                        "acked": counts["ack"],
                        "retried": counts["retry"],
                        "expired_leases": counts["lease_expired"],
                        "dead_lettered": counts["dead_letter"],
                        "dropped": counts["drop"],
                        "purged": counts["purge"],
                        "retention_expired": counts["retention_expired"],
                        "backlog": len(queue.messages),
                    }
                )
        return {"version": STATS_VERSION, "queues": queues}

    def note(self, kind: str, queue_id: str, detail: str = "", message_ids: Iterable[str] = ()) -> None:
        """Add an entry to the journal from outside (the HTTP layer records lost answers here)."""
        if self.record_events:
            with self.lock:
                self.events.append(Event(kind, queue_id, tuple(message_ids), (), self.clock.now(), detail))

    # -- read access for tests -----------------------------------------------------------------

    def find_queue(self, account_id: str, name_or_id: str) -> QueueState:
        with self.lock:
            for queue in self._account(account_id).values():
                if name_or_id in (queue.queue_id, queue.name):
                    self._apply_time(queue, self.clock.now())
                    return queue
        raise KeyError(f"no queue {name_or_id!r} in account {account_id}")

    def message_views(self, account_id: str, name_or_id: str) -> list[MessageView]:
        with self.lock:
            queue = self.find_queue(account_id, name_or_id)
            now = self.clock.now()
            return [
                MessageView(
                    id=m.id,
                    body=m.body,
                    content_type=m.content_type,
                    attempts=m.attempts,
                    state="leased" if m.lease_id else ("available" if m.visible_at <= now else "delayed"),
                    timestamp_ms=m.timestamp_ms,
                    visible_at=m.visible_at,
                )
                for m in queue.messages.values()
            ]


def _settings_object(body: dict[str, Any]) -> dict[str, Any]:
    """A body's ``settings``: absent or ``null`` is none; anything but an object (``0``, ``""``, ``[]``) is a 400."""
    settings = body.get("settings")
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ApiError(400, 10207, f'JSONRequestBodyInvalid: Expected object at "settings", got {settings!r}')
    return settings


def _check_new_name(queues: dict[str, QueueState], name: object) -> None:
    """A name a queue may take: Cloudflare's rule (lowercase letters, digits, dashes), and not another queue's."""
    if not isinstance(name, str):
        raise ApiError(400, 10207, f'JSONRequestBodyInvalid: Expected string at "queue_name", got {name!r}')
    if not QUEUE_NAME_RE.fullmatch(name):
        raise ApiError(400, 11003, f"invalid queue name: {name}. Must match {QUEUE_NAME_RULE}")
    if any(q.name == name for q in queues.values()):
        raise ApiError(409, 11009, f"A queue named {name!r} already exists")


def _number(value: Any, name: str, low: float, high: float, code: int) -> int:
    """A whole-number setting (seconds, milliseconds or a count) within its bounds."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not low <= value <= high
        or value != int(value)
    ):
        raise ApiError(400, code, f"{name} must be a whole number between {low:g} and {high:g}, got {value!r}")
    return int(value)


def _queue_settings(
    current: dict[str, Any], new: dict[str, Any], max_retention: int = MAX_RETENTION_SECONDS
) -> dict[str, Any]:
    settings = {
        "delivery_delay": current.get("delivery_delay", 0),
        "delivery_paused": current.get("delivery_paused", False),
        "message_retention_period": current.get(
            "message_retention_period", min(DEFAULT_RETENTION_SECONDS, max_retention)
        ),
    }
    if "delivery_delay" in new:
        settings["delivery_delay"] = _number(new["delivery_delay"], "delivery_delay", 0, MAX_DELAY_SECONDS, 100128)
    if "message_retention_period" in new:
        settings["message_retention_period"] = _number(
            new["message_retention_period"],
            "message_retention_period",
            MIN_RETENTION_SECONDS,
            max_retention,
            100128,
        )
    if "delivery_paused" in new:
        if not isinstance(new["delivery_paused"], bool):
            raise ApiError(400, 100128, "delivery_paused must be a boolean")
        settings["delivery_paused"] = new["delivery_paused"]
    return settings


def _consumer_settings(kind: str, new: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "batch_size": _number(
            new.get("batch_size", DEFAULT_PULL_BATCH_SIZE), "batch_size", 1, MAX_PULL_BATCH_SIZE, 100127
        ),
        "max_retries": _number(new.get("max_retries", DEFAULT_MAX_RETRIES), "max_retries", 0, MAX_MAX_RETRIES, 100127),
        "retry_delay": _number(new.get("retry_delay", 0), "retry_delay", 0, MAX_DELAY_SECONDS, 100127),
    }
    if kind == "http_pull":
        settings["visibility_timeout_ms"] = _number(
            new.get("visibility_timeout_ms", DEFAULT_VISIBILITY_TIMEOUT_MS),
            "visibility_timeout_ms",
            1,
            MAX_VISIBILITY_TIMEOUT_MS,
            100127,
        )
    else:
        if new.get("max_concurrency") is not None:
            settings["max_concurrency"] = _number(new["max_concurrency"], "max_concurrency", 1, 250, 100127)
        settings["max_wait_time_ms"] = _number(new.get("max_wait_time_ms", 5000), "max_wait_time_ms", 0, 60_000, 100127)
    return settings
