"""
A local emulator of the Cloudflare Queues HTTP API (``/client/v4``): queues, HTTP pull consumers,
push, batch push, pull with leases, ack and retry, metrics, dead-letter queues, retention, limits,
error codes, and reproducible fault injection.

Three ways to run it:

* ``python -m airflow_provider_cfqueues.emulator`` (or ``cfqueues-emulator``): a CLI server.
* :class:`CloudflareQueuesEmulator`: a context manager that serves on a free loopback port in a
  background thread of the current process, with an injectable clock.
* the ``cfqueues_emulator`` pytest fixture (:mod:`airflow_provider_cfqueues.pytest_plugin`).

It depends on the standard library only (no Airflow), so it runs wherever the provider runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

from .app import EmulatorApp
from .clock import Clock, ManualClock, SystemClock
from .faults import ENDPOINTS, FaultPlan, FaultRule
from .r2 import ACTIONS as R2_ACTIONS
from .r2 import notification_body
from .ratelimit import FREE_MAX_RETENTION_SECONDS, PLANS, DailyOperations, QueueThroughput, TokenBudget
from .server import IDLE_TIMEOUT, REQUEST_TIMEOUT, EmulatorHTTPServer
from .state import MAX_RETENTION_SECONDS, EmulatorState, MessageView, PushItem, QueueState
from .subscriptions import event_body as subscription_event_body

DEFAULT_ACCOUNT_ID = "023e105f4ecef8ad9ca31a8372d0c353"
DEFAULT_CONN_ID = "cloudflare_queues_default"

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "ENDPOINTS",
    "CloudflareQueuesEmulator",
    "EmulatorProcess",
    "EmulatorQueue",
    "FaultPlan",
    "FaultRule",
    "ManualClock",
    "MessageView",
    "SystemClock",
]


@dataclass(frozen=True)
class EmulatorQueue:
    """
    A queue created through the emulator's Python API.

    :param name: the queue name.
    :param id: the queue id (32 hex characters).
    """

    name: str
    id: str


class _ConnectionInfo:
    """Builds Airflow connection descriptions for an emulator at ``base_url``."""

    token: str
    account_id: str

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    def airflow_connection(self, queue: str | None = None, *, token: str | None = None) -> dict[str, Any]:
        """The connection as Airflow's JSON form (``AIRFLOW_CONN_<ID>='<json>'``); ``token``: another
        than :attr:`token` (the read-only one, say)."""
        extra: dict[str, Any] = {"account_id": self.account_id}
        if queue is not None:
            extra["queue"] = queue
        password = self.token if token is None else token
        return {"conn_type": "cloudflare_queues", "host": self.base_url, "password": password, "extra": extra}

    def airflow_connection_env(
        self, conn_id: str = DEFAULT_CONN_ID, queue: str | None = None, *, token: str | None = None
    ) -> dict[str, str]:
        """Environment variables that define the connection ``conn_id`` for Airflow."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.airflow_connection(queue, token=token))}

    def airflow_connection_uri(self, queue: str | None = None) -> str:
        """The connection as an Airflow URI (``AIRFLOW_CONN_<ID>='<uri>'``)."""
        url = urlsplit(self.base_url)
        query = f"account_id={self.account_id}"
        if queue is not None:
            query += f"&queue={quote(queue, safe='')}"
        return (
            f"cloudflare-queues://{url.scheme}://:{quote(self.token, safe='')}@{url.netloc}"
            f"/{quote(url.path.lstrip('/'), safe='')}?{query}"
        )


class CloudflareQueuesEmulator(_ConnectionInfo):
    """
    The emulator in a background thread of this process, on a free loopback port by default.

    ::

        with CloudflareQueuesEmulator(clock=ManualClock()) as emulator:
            queue = emulator.create_queue("orders")
            ...  # talk HTTP to emulator.base_url with emulator.token
            emulator.clock.advance(31)  # expire the leases of a 30 s visibility timeout

    :param host: address to bind (default ``127.0.0.1``).
    :param port: port to bind; ``0`` (the default) asks the OS for a free one.
    :param token: the API token clients must send; a random one when not given (see :attr:`token`).
    :param account_id: the account that owns the queues (32 hex characters).
    :param clock: time source; pass a :class:`ManualClock` to advance time in tests.
    :param faults: fault injection plan; changeable later through :attr:`faults`.
    :param record_events: keep a journal of deliveries, acks, expiries and lost answers
        (:attr:`events`).
    :param json_bodies: how pulls send ``json`` bodies: ``"base64"`` (the default, as Cloudflare's
        docs say), ``"plain"`` JSON text (as also seen live), or ``"mixed"`` (some each way).
    :param idle_timeout: seconds a connection may wait before starting a request.
    :param request_timeout: seconds a client has to send a whole request.
    :param rate_limit: the token's API budget as ``"REQUESTS/SECONDS"`` (Cloudflare's is
        ``"1200/300"``); pulls and acks are exempt, going over blocks every call for a window.
        ``None`` (default): unlimited.
    :param queue_throughput: messages per second each queue takes, pushed or pulled (Cloudflare:
        5,000); ``None`` (default): unlimited.
    :param read_only_token: a second token with the Queues Read permission only (reads queues,
        consumers, metrics; 403 on pushes, pulls, acks and administration), to test permission errors.
    :param purge_seconds: how long a purge takes to complete (0, the default: at once); the
        messages stored when it started disappear when it completes, as on Cloudflare.
    :param plan: ``"paid"`` (default) or ``"free"``: the Free plan keeps messages 24 hours at most
        (a longer ``message_retention_period`` is refused) and allows 10,000 operations a day (each
        message written, read or deleted; past it pushes, pulls and acks get 429, code 10253).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        clock: Clock | None = None,
        faults: FaultPlan | None = None,
        record_events: bool = False,
        json_bodies: str = "base64",
        idle_timeout: float = IDLE_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        rate_limit: str | None = None,
        queue_throughput: int | None = None,
        read_only_token: str | None = None,
        purge_seconds: float = 0.0,
        plan: str = "paid",
    ) -> None:
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {', '.join(PLANS)}, got {plan!r}")
        free = plan == "free"
        self.plan = plan
        self.token = token if token is not None else "emu-" + secrets.token_urlsafe(24)
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.account_id = account_id
        self.clock = clock or SystemClock()
        self.faults = faults or FaultPlan()
        self.state = EmulatorState(
            self.clock,
            record_events=record_events,
            json_bodies=json_bodies,
            purge_seconds=purge_seconds,
            max_retention_seconds=FREE_MAX_RETENTION_SECONDS if free else MAX_RETENTION_SECONDS,
        )
        self.state.add_account(account_id)
        self.app = EmulatorApp(
            self.state,
            self.token,
            self.faults,
            budget=TokenBudget.from_spec(rate_limit) if rate_limit else None,
            throughput=QueueThroughput(queue_throughput) if queue_throughput else None,
            read_only_token=read_only_token,
            operations=DailyOperations() if free else None,
        )
        self._address = (host, port)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"CloudflareQueuesEmulator(base_url={self.base_url if self._server else None!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> CloudflareQueuesEmulator:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        self._server = EmulatorHTTPServer(
            self._address, self.app, idle_timeout=self.idle_timeout, request_timeout=self.request_timeout
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="cfqueues-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> CloudflareQueuesEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:54321/client/v4``."""
        host = self._address[0]
        return f"http://{host}:{self.port}/client/v4"

    @property
    def connections_accepted(self) -> int:
        """TCP connections clients opened so far (keep-alive reuse shows as few)."""
        return self._server.connections_accepted if self._server else 0

    @property
    def connections_open(self) -> int:
        """TCP connections open now (a client that closes its sessions leaves none)."""
        return self._server.connections_open if self._server else 0

    # -- set-up and read access for tests ------------------------------------------------------

    def create_queue(
        self,
        name: str,
        *,
        http_pull: bool = True,
        batch_size: int | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        visibility_timeout_ms: int | None = None,
        dead_letter_queue: str | None = None,
        delivery_delay: float | None = None,
        message_retention_period: int | None = None,
        jurisdiction: str | None = None,
    ) -> EmulatorQueue:
        """
        Create a queue (and, unless ``http_pull=False``, its HTTP pull consumer) and return its id.

        Consumer settings left as ``None`` take the service's defaults.
        """
        settings = {
            k: v
            for k, v in {"delivery_delay": delivery_delay, "message_retention_period": message_retention_period}.items()
            if v is not None
        }
        queue = self.state.create_queue(self.account_id, name, settings, jurisdiction)
        if http_pull:
            self.create_consumer(
                queue["queue_id"],
                batch_size=batch_size,
                max_retries=max_retries,
                retry_delay=retry_delay,
                visibility_timeout_ms=visibility_timeout_ms,
                dead_letter_queue=dead_letter_queue,
            )
        return EmulatorQueue(name=name, id=queue["queue_id"])

    def create_consumer(
        self,
        name_or_id: str,
        *,
        batch_size: int | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        visibility_timeout_ms: int | None = None,
        dead_letter_queue: str | None = None,
    ) -> None:
        """Give a queue its HTTP pull consumer; settings left as ``None`` take the service's defaults."""
        consumer_settings = {
            k: v
            for k, v in {
                "batch_size": batch_size,
                "max_retries": max_retries,
                "retry_delay": retry_delay,
                "visibility_timeout_ms": visibility_timeout_ms,
            }.items()
            if v is not None
        }
        self.state.create_consumer(
            self.account_id,
            self.queue(name_or_id).queue_id,
            {"type": "http_pull", "settings": consumer_settings, "dead_letter_queue": dead_letter_queue or ""},
        )

    def stats(self) -> dict[str, Any]:
        """What ``GET {base_url}/accounts/{account_id}/emulator/stats`` answers (``version`` and per-queue counters)."""
        return self.state.stats(self.account_id)

    def queue(self, name_or_id: str) -> QueueState:
        """The internal state of a queue (read it, do not modify it)."""
        return self.state.find_queue(self.account_id, name_or_id)

    def messages(self, name_or_id: str) -> list[MessageView]:
        """Every message in a queue's backlog with its state (available, delayed or leased)."""
        return self.state.message_views(self.account_id, name_or_id)

    def metrics(self, name_or_id: str) -> dict[str, int]:
        """``backlog_count``, ``backlog_bytes`` and ``oldest_message_timestamp_ms`` of a queue."""
        queue = self.queue(name_or_id)
        return self.state.metrics(self.account_id, queue.queue_id)

    def pause_delivery(self, queue: str) -> None:
        """Pause delivery, as ``wrangler queues pause-delivery`` does: pushes are kept, pulls get 409."""
        self.state.update_queue(self.account_id, self.queue(queue).queue_id, {"settings": {"delivery_paused": True}})

    def resume_delivery(self, queue: str) -> None:
        """Resume delivery after :meth:`pause_delivery`."""
        self.state.update_queue(self.account_id, self.queue(queue).queue_id, {"settings": {"delivery_paused": False}})

    def inject_message(self, queue: str, body: bytes | str, content_type: str = "bytes") -> str:
        """Enqueue a message as a Worker producer would (``bytes`` or ``v8`` bodies included)."""
        return self.state.inject(self.account_id, self.queue(queue).queue_id, body, content_type)

    def add_r2_notification_rule(
        self,
        bucket: str,
        queue: str,
        actions: Sequence[str] = ("PutObject", "CopyObject", "CompleteMultipartUpload"),
        *,
        prefix: str | None = None,
        suffix: str | None = None,
        description: str | None = None,
        jurisdiction: str = "default",
    ) -> str:
        """
        Add an R2 event-notification rule, as ``PUT .../event_notifications/r2/{bucket}/configuration/
        queues/{queue_id}`` does (default: object creations); returns its rule id. A rule that overlaps
        another rule of the bucket is refused (:class:`~.r2.RuleError`).
        """
        spec: dict[str, Any] = {"actions": list(actions)}
        spec.update({k: v for k, v in (("prefix", prefix), ("suffix", suffix), ("description", description)) if v})
        (rule,) = self.app.r2[self.account_id].add(
            jurisdiction, bucket, self.queue(queue).queue_id, [spec], self.state.clock.now()
        )
        return rule.rule_id

    def r2_object_event(
        self,
        bucket: str,
        key: str,
        action: str = "PutObject",
        *,
        size: int | None = None,
        etag: str | None = None,
        copy_source: tuple[str, str] | None = None,
        jurisdiction: str = "default",
    ) -> list[str]:
        """
        Say that an object of ``bucket`` was put, copied (``copy_source=(bucket, key)``) or deleted: every
        queue with a matching rule gets the documented notification (``size`` and ``etag`` are left out of
        deletes, as R2 does), once per queue. Returns the new message ids; none when no rule matches.
        """
        event = {"key": key, "action": action, "size": size, "etag": etag, "copy_source": copy_source}
        return self.r2_object_events(bucket, [event], jurisdiction=jurisdiction)

    def r2_object_events(
        self, bucket: str, events: Sequence[dict[str, Any]], *, jurisdiction: str = "default"
    ) -> list[str]:
        """
        Several object events at once (each a dict of ``r2_object_event``'s ``key``, ``action``, ``size``,
        ``etag``, ``copy_source``): each queue gets its notifications in one step, as a burst that lands
        between two pulls. Returns the new message ids.
        """
        by_queue: dict[str, list[PushItem]] = {}
        for event in events:
            key, action = event["key"], event.get("action", "PutObject")
            if action not in R2_ACTIONS:
                raise ValueError(f"action {action!r} is not one of {', '.join(R2_ACTIONS)}")
            deleting = action in ("DeleteObject", "LifecycleDeletion")
            size, etag = event.get("size"), event.get("etag")
            if not deleting and etag is None:
                etag = hashlib.md5(f"{bucket}/{key}/{size}".encode(), usedforsecurity=False).hexdigest()
            body = notification_body(
                self.account_id,
                bucket,
                key,
                action,
                size=None if deleting else (size if size is not None else 0),
                etag=None if deleting else etag,
                event_time=self.state.clock.now(),
                copy_source=event.get("copy_source") if action == "CopyObject" else None,
            )
            raw = json.dumps(body).encode()
            item = PushItem(body=base64.b64encode(raw).decode(), content_type="json", size=len(raw))
            for queue_id in self.app.r2[self.account_id].targets(jurisdiction, bucket, key, action):
                by_queue.setdefault(queue_id, []).append(item)
        return [
            mid for queue_id, items in by_queue.items() for mid in self.state.push(self.account_id, queue_id, items)[1]
        ]

    def subscription_event(self, source: dict[str, Any], event: str, payload: Any = None) -> list[str]:
        """
        Say that ``source`` (``{"type": "workflows.workflow", "workflow_name": "nightly"}``, ``{"type":
        "kv"}``...) had ``event`` (``instance.completed``...): every enabled event subscription of that
        source that lists the event gets the documented message (``type`` ``cf.<source>.<event>``) in
        its destination queue. Returns the new message ids; none when no subscription matches.
        """
        now = self.state.clock.now()
        ids = []
        for subscription in self.app.subscriptions[self.account_id].targets(source, event):
            body = subscription_event_body(self.account_id, subscription["id"], source, event, payload, now)
            queue_id = subscription["destination"]["queue_id"]
            ids.append(self.state.inject(self.account_id, queue_id, json.dumps(body), "json", source="event"))
        return ids

    def arrive_together(self, queue: str, bodies: Sequence[Any]) -> list[str]:
        """
        Enqueue JSON messages in one step, as a burst from many producers that lands between two pulls
        (a push through the API takes one request per 100); returns their ids, in order.
        """
        items = []
        for body in bodies:
            raw = json.dumps(body).encode()
            items.append(PushItem(body=base64.b64encode(raw).decode(), content_type="json", size=len(raw)))
        return self.state.push(self.account_id, self.queue(queue).queue_id, items)[1]

    @property
    def events(self) -> list[Any]:
        """The journal kept when ``record_events=True``."""
        return self.state.events


class EmulatorProcess(_ConnectionInfo):
    """
    The emulator as a separate process (``python -m airflow_provider_cfqueues.emulator``), for
    benchmarks and end-to-end tests where client and server must not share an interpreter.

    :param queues: names of queues to create, each with an HTTP pull consumer.
    :param token: the API token; a random one when not given.
    :param account_id: the account that owns the queues.
    :param extra_args: more CLI arguments (``--fault``, ``--seed``, ...).
    """

    def __init__(
        self,
        queues: Sequence[str] = (),
        *,
        token: str | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.token = token if token is not None else "emu-" + secrets.token_urlsafe(24)
        self.account_id = account_id
        self.queue_names = list(queues)
        self.extra_args = list(extra_args)
        self.queue_ids: dict[str, str] = {}
        self._base_url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> EmulatorProcess:
        args = [sys.executable, "-m", "airflow_provider_cfqueues.emulator", "--port", "0", "--quiet"]
        args += ["--account-id", self.account_id, *self.extra_args]
        for name in self.queue_names:
            args += ["--queue", name]
        env = {**os.environ, "CFQUEUES_EMULATOR_TOKEN": self.token}
        self._process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            args, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self._process.stdout is not None
        self._base_url = self._process.stdout.readline().strip()
        if not self._base_url.startswith("http"):
            self.stop()
            raise RuntimeError("the emulator process did not start; see its stderr")
        for _ in self.queue_names:
            name, queue_id = self._process.stdout.readline().split()
            self.queue_ids[name] = queue_id
        return self

    @property
    def base_url(self) -> str:
        """The API base URL printed by the emulator process."""
        return self._base_url

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
