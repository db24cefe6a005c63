"""
:class:`CloudflareQueuesHook`: the one door to the Cloudflare Queues HTTP API for the provider.

The hook turns a connection into settings and sends what :mod:`airflow_provider_cfqueues.api`
builds, through a keep-alive ``requests.Session`` (sync methods) or an ``httpx.AsyncClient``
(``a``-prefixed coroutines, used by the triggers). Validation, request building, retries, chunking
and parsing are shared: the two paths differ only in the lines that do I/O.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import os
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import certifi
import httpx
import requests

from .. import __version__
from .._compat import BaseHook, mask_secret
from ..api import admin_flows, event_flows, flows
from ..api.admin_requests import ConsumerSettings, queue_settings, validate_jurisdiction
from ..api.limits import MAX_PULL_BATCH_SIZE
from ..api.models import (
    AckResult,
    Consumer,
    EventSubscription,
    PeekResult,
    PulledMessage,
    PullResult,
    PurgeMessagesResult,
    PurgeStatus,
    PushResult,
    Queue,
    QueueMetrics,
    R2BucketRules,
    R2NotificationRule,
)
from ..api.operations import ApiRequest, RawResponse
from ..api.retry import RetryPolicy
from ..api.throttle import THROTTLES
from ..api.units import interval
from . import transport
from .connection import ConnectionSettings, settings_from_connection
from .connection_form import CONN_TYPE, FIELD_BEHAVIOUR, HOOK_NAME, form_widgets

T = TypeVar("T")

USER_AGENT = f"airflow-provider-cfqueues/{__version__}"
#: one lock per (API, account, queue) for consumer updates in this process
_CONSUMER_UPDATES: defaultdict[tuple[str, str, str], threading.Lock] = defaultdict(threading.Lock)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context (CA bundle as ``requests`` uses it) for every async client of the process."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or certifi.where()
    return ssl.create_default_context(cafile=bundle)


class CloudflareQueuesHook(BaseHook):
    """
    Interact with Cloudflare Queues over its HTTP API: push, pull (lease), ack and retry, metrics.

    The connection (type ``cloudflare_queues``) holds the API token in its password, the account id
    (and optionally a default queue) in its extras, and optionally the API base URL in its host (for
    the bundled emulator, ``http://127.0.0.1:<port>/client/v4``).

    :param cloudflare_queues_conn_id: the Airflow connection id.
    :param queue: default queue for this hook (id or name); falls back to the connection's ``queue`` extra.
    :param account_id: the account id; falls back to the connection's ``account_id`` extra.
    :param retry_policy: how transient failures are retried (defaults from the connection's extras).
    :param timeout: seconds to wait for each answer (default: the connection's ``timeout`` extra, or 30).
    :param pool_size: keep-alive connections kept per hook and client (raise it for many threads sharing
        one hook).
    """

    conn_name_attr = "cloudflare_queues_conn_id"
    default_conn_name = "cloudflare_queues_default"
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form (Airflow before 3.2; later ones read the provider info)."""
        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields of the connection form (Airflow before 3.2)."""
        return {
            key: (list(value) if isinstance(value, list) else dict(value)) for key, value in FIELD_BEHAVIOUR.items()
        }

    def __init__(
        self,
        cloudflare_queues_conn_id: str = default_conn_name,
        *,
        queue: str | None = None,
        account_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float | None = None,
        pool_size: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cloudflare_queues_conn_id = cloudflare_queues_conn_id
        self.queue = queue
        self.account_id = account_id
        self.retry_policy = retry_policy
        self.timeout = timeout
        self.pool_size = pool_size
        self._settings: ConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._async_client: httpx.AsyncClient | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        # how the hook waits between retries (tests replace them to observe the delays)
        self._sleep: Callable[[float], None] = time.sleep
        self._asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.cloudflare_queues_conn_id!r}, queue={self.queue!r})"

    # -- connection ----------------------------------------------------------------------------

    def _make_settings(self, conn: Any) -> ConnectionSettings:
        settings = settings_from_connection(
            conn, account_id=self.account_id, queue=self.queue, retry=self.retry_policy, timeout=self.timeout
        )
        mask_secret(settings.token)
        return settings

    @property
    def settings(self) -> ConnectionSettings:
        """The validated connection settings (read once per hook)."""
        if self._settings is None:
            self._settings = self._make_settings(self.get_connection(self.cloudflare_queues_conn_id))
        return self._settings

    async def aget_settings(self) -> ConnectionSettings:
        """:attr:`settings`, read without blocking the event loop (for triggers)."""
        if self._settings is None:
            getter = getattr(self, "aget_connection", None)
            if getter is not None:  # Airflow 3
                conn = await getter(self.cloudflare_queues_conn_id)
            else:  # Airflow 2.11
                conn = await asyncio.to_thread(self.get_connection, self.cloudflare_queues_conn_id)
            self._settings = self._make_settings(conn)
        return self._settings

    def _context(self, settings: ConnectionSettings) -> flows.FlowContext:
        return flows.FlowContext(
            account_id=settings.account_id,
            scope=settings.base_url,
            default_queue=settings.queue,
            retry=settings.retry,
            throttle=THROTTLES.get(settings.base_url, settings.account_id),
            log=self.log,
        )

    # -- sync transport ------------------------------------------------------------------------

    def get_conn(self) -> requests.Session:
        """The keep-alive ``requests.Session``, authenticated with the token."""
        if self._session is None:
            session = requests.Session()
            adapter = transport.DeadlineAdapter(pool_connections=1, pool_maxsize=self.pool_size, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            # read proxy and CA-bundle environment variables once, not on every request
            environment = session.merge_environment_settings(self.settings.base_url, {}, None, None, None)
            session.proxies.update(environment["proxies"])
            session.verify = environment["verify"]
            session.cert = environment["cert"]
            session.trust_env = False
            session.headers.update(
                {
                    "Authorization": f"Bearer {self.settings.token}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                }
            )
            self._session = session
        return self._session

    def _send(self, request: ApiRequest) -> RawResponse:
        settings = self.settings
        return transport.send_sync(self.get_conn(), settings.base_url, request, settings.timeout)

    def _run(self, flow: flows.Flow[T]) -> T:
        return flows.run(flow, self._send, self._sleep)

    def worker_copy(self) -> CloudflareQueuesHook:
        """
        A hook for another thread: the same connection settings (read once, here), retry behaviour and
        token budget, with its own HTTP session (a ``requests.Session`` is not safe to share between
        threads). Close it when the thread is done.
        """
        worker = copy.copy(self)
        worker._settings = self.settings
        worker._session = None
        worker._async_client = None
        worker._async_loop = None
        return worker

    def close(self) -> None:
        """Close the keep-alive connections of the sync session."""
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- async transport -----------------------------------------------------------------------

    async def _async_conn(self) -> httpx.AsyncClient:
        """This hook's ``httpx.AsyncClient`` for the running event loop. Every client shares one TLS
        context: a triggerer runs hundreds of triggers, and loading the CA bundle per client costs
        ~1 MB and milliseconds each (a shared pool instead would queue them all behind each other)."""
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop or self._async_client.is_closed:
            self._async_client = httpx.AsyncClient(
                headers={"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=self.pool_size, max_keepalive_connections=self.pool_size),
                verify=_tls_context(),
            )
            self._async_loop = loop
        return self._async_client

    async def _asend(self, request: ApiRequest) -> RawResponse:
        settings = await self.aget_settings()
        client = await self._async_conn()
        return await transport.send_async(client, settings.base_url, request, settings.token, settings.timeout)

    async def _arun(self, flow: flows.Flow[T]) -> T:
        return await flows.arun(flow, self._asend, self._asleep)

    async def aclose(self) -> None:
        """Close the async client's connections."""
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    # -- operations (sync) ---------------------------------------------------------------------

    def push_message(
        self,
        body: Any,
        *,
        queue: str | None = None,
        content_type: str | None = None,
        delay_seconds: float | None = None,
    ) -> PushResult:
        """
        Push one message.

        :param body: a ``str`` (sent as ``text``), any JSON-serialisable value (sent as ``json``), or an
            :class:`~airflow_provider_cfqueues.api.models.OutgoingMessage`.
        :param queue: queue id or name (default: the hook's).
        :param content_type: ``"text"`` or ``"json"``; chosen from the body when ``None``.
        :param delay_seconds: seconds (0 to 86,400) before the message can be delivered.
        """
        return self._run(
            flows.push_message(
                self._context(self.settings),
                body=body,
                queue=queue,
                content_type=content_type,
                delay_seconds=delay_seconds,
            )
        )

    def push_messages(
        self,
        messages: Iterable[Any],
        *,
        queue: str | None = None,
        delay_seconds: float | None = None,
        content_type: str | None = None,
        preserve_order: bool = False,
    ) -> PushResult:
        """
        Push many messages in the fewest requests (at most 100 messages and 256 KB per request).

        Every message is validated before the first request. When a request fails after others
        succeeded, :class:`~airflow_provider_cfqueues.api.errors.CloudflareQueuesPushError` says which
        messages (by index) were pushed, which failed and which were not sent.

        :param messages: bodies and/or ``OutgoingMessage`` objects. A ``dict`` is always a body.
        :param queue: queue id or name (default: the hook's).
        :param delay_seconds: delay for the whole batch; a message's own ``delay_seconds`` wins.
        :param content_type: content type of plain bodies; chosen per body when ``None``.
        :param preserve_order: keep consecutive messages in order across requests even when packing
            by size would need fewer requests (Cloudflare Queues does not guarantee order anyway).
        """
        flow = flows.push_messages(
            self._context(self.settings),
            messages=messages,
            queue=queue,
            delay_seconds=delay_seconds,
            content_type=content_type,
            preserve_order=preserve_order,
        )
        return self._run(flow)

    def pull_messages(
        self,
        *,
        queue: str | None = None,
        batch_size: int | None = None,
        visibility_timeout: float | timedelta | None = None,
    ) -> PullResult:
        """
        Lease up to ``batch_size`` messages (default: the consumer's setting, at most 100).

        :param visibility_timeout: how long the messages stay leased: seconds or a ``timedelta``
            (1 ms to 12 hours; default: the consumer's setting, 30 s unless changed).
        """
        return self._run(
            flows.pull_messages(
                self._context(self.settings), queue=queue, batch_size=batch_size, visibility_timeout=visibility_timeout
            )
        )

    def peek_messages(self, *, queue: str | None = None, batch_size: int | None = None) -> PeekResult:
        """
        Look at up to ``batch_size`` messages (1 to 100; default: the service's) without leasing them: no
        delivery attempt is spent and they stay available to pulls. Each carries a ``ref`` to purge it by
        (:meth:`purge_messages`). Peeking again shows the same first messages: a peek does not page.
        """
        return self._run(flows.peek_messages(self._context(self.settings), queue=queue, batch_size=batch_size))

    def purge_messages(self, queue: str, refs: Iterable[Any]) -> PurgeMessagesResult:
        """
        Delete the messages with these ``refs`` (from :meth:`peek_messages`: refs, peeked messages or
        mappings with ``ref``) from the queue named — never a default queue. A purge does not count as a
        delivery. Refs the service warns about (their message was delivered or purged since the peek, or
        unknown) are listed in ``warnings`` and not counted as purged.
        """
        return self._run(flows.purge_messages(self._context(self.settings), queue=queue, refs=refs))

    def collect_messages(
        self,
        *,
        queue: str | None = None,
        batch_size: int = MAX_PULL_BATCH_SIZE,
        max_messages: int = MAX_PULL_BATCH_SIZE,
        visibility_timeout: float | timedelta | None = None,
        enough: Callable[[list[PulledMessage]], bool] | None = None,
    ) -> flows.Collected:
        """
        Pull until ``max_messages`` are leased or a pull comes back empty (or ``enough(messages)``, checked
        after each pull, says so), keeping every lease. A failing pull ends the collection without
        raising: :attr:`~airflow_provider_cfqueues.api.flows.Collected.error` holds it, and the messages
        pulled before it are returned, still leased.
        """
        flow = flows.collect_messages(
            self._context(self.settings),
            queue=queue,
            batch_size=batch_size,
            max_messages=max_messages,
            visibility_timeout=visibility_timeout,
            enough=enough,
        )
        return self._run(flow)

    def ack_messages(
        self, *, queue: str | None = None, acks: Iterable[Any] = (), retries: Iterable[Any] = ()
    ) -> AckResult:
        """
        Acknowledge (delete) and retry leased messages, in one request per 100 lease ids.

        :param acks: lease ids, pulled messages, or mappings with a ``lease_id``.
        :param retries: lease ids, pulled messages, mappings (with optional ``delay_seconds``), or
            ``(lease id or message, delay_seconds)`` pairs.
        """
        return self._run(flows.ack_messages(self._context(self.settings), queue=queue, acks=acks, retries=retries))

    def get_metrics(self, queue: str | None = None) -> QueueMetrics:
        """The queue's backlog metrics (leases nothing)."""
        return self._run(flows.get_metrics(self._context(self.settings), queue=queue))

    def get_queue(self, queue: str | None = None) -> Queue:
        """The queue's settings and consumers."""
        return self._run(flows.get_queue(self._context(self.settings), queue=queue))

    def list_queues(self) -> list[Queue]:
        """Every queue of the account."""
        return self._run(flows.list_queues(self._context(self.settings)))

    def list_consumers(self, queue: str | None = None) -> list[Consumer]:
        """The queue's consumers."""
        return self._run(flows.list_consumers(self._context(self.settings), queue=queue))

    def resolve_queue_id(self, queue: str | None = None) -> str:
        """The id of a queue named by id or name (names are looked up once and cached)."""
        return self._run(flows.resolve_queue(self._context(self.settings), queue)).queue_id

    def test_connection(self) -> tuple[bool, str]:
        """Check the token, the account and, when set, the queue and its HTTP pull consumer."""
        try:
            settings = self.settings
        except Exception as err:  # Airflow's UI shows the message: anything must become (False, text)
            return False, str(err)
        return self._run(flows.check_connection(self._context(settings), queue=None))

    # -- administration (sync) ----------------------------------------------------------------

    def list_r2_notification_rules(self, bucket: str, *, jurisdiction: str | None = None) -> R2BucketRules:
        """
        Every R2 event-notification rule of ``bucket``, by queue (API token permission: R2 read; needs the
        bucket's ``jurisdiction`` when it is not ``default``).
        """
        return self._run(
            event_flows.list_r2_rules(self._context(self.settings), bucket=bucket, jurisdiction=jurisdiction)
        )

    def add_r2_notification_rule(
        self,
        bucket: str,
        queue: str,
        *,
        actions: Sequence[str] | str = "object-create",
        prefix: str | None = None,
        suffix: str | None = None,
        description: str | None = None,
        jurisdiction: str | None = None,
    ) -> R2NotificationRule:
        """
        Send ``bucket``'s object events to ``queue`` (id or name, never the hook's default): ``actions`` as R2
        names them, or ``object-create`` / ``object-delete``, for keys with ``prefix`` and ``suffix``.
        Idempotent (the same rule is returned as it is); refused when the queue has other rules on the
        bucket, which a PUT might replace. API token permissions: R2 write and Queues write.
        """
        flow = event_flows.add_r2_rule(
            self._context(self.settings),
            bucket=bucket,
            queue=queue,
            actions=actions,
            prefix=prefix,
            suffix=suffix,
            description=description,
            jurisdiction=jurisdiction,
        )
        return self._run(flow)

    def list_event_subscriptions(self) -> list[EventSubscription]:
        """Every event subscription of the account."""
        return self._run(event_flows.list_subscriptions(self._context(self.settings)))

    def get_event_subscription(self, subscription: str) -> EventSubscription | None:
        """The event subscription named ``subscription`` (its name or id), or ``None``."""
        return self._run(event_flows.find_subscription(self._context(self.settings), ref=subscription))

    def create_event_subscription(
        self,
        name: str,
        queue: str,
        *,
        source: dict[str, Any],
        events: Sequence[str] | str,
        enabled: bool = True,
    ) -> EventSubscription:
        """
        Send ``source``'s ``events`` to ``queue`` (id or name, never the hook's default): ``source`` as
        ``{"type": "workflows.workflow", "workflow_name": "nightly"}``, ``{"type": "kv"}``... Idempotent by
        name; a subscription of that name with other settings is refused (update it instead).
        """
        flow = event_flows.create_subscription(
            self._context(self.settings), name=name, queue=queue, source=source, events=events, enabled=enabled
        )
        return self._run(flow)

    def update_event_subscription(
        self,
        subscription: str,
        *,
        enabled: bool | None = None,
        events: Sequence[str] | str | None = None,
        new_name: str | None = None,
    ) -> EventSubscription:
        """Enable or disable the subscription named ``subscription`` (name or id), or change its events or name."""
        flow = event_flows.update_subscription(
            self._context(self.settings), ref=subscription, enabled=enabled, events=events, name=new_name
        )
        return self._run(flow)

    def delete_event_subscription(self, subscription: str) -> str | None:
        """Delete the subscription named ``subscription`` (name or id); its id, or ``None`` if there was none."""
        return self._run(event_flows.delete_subscription(self._context(self.settings), ref=subscription))

    def remove_r2_notification_rules(
        self, bucket: str, queue: str, rule_ids: Sequence[str], *, jurisdiction: str | None = None
    ) -> list[str]:
        """
        Remove the rules ``rule_ids`` that send ``bucket``'s events to ``queue``; returns the ids removed
        (ids already gone are skipped; another queue's are refused, and nothing is removed). Never the
        service's remove-all. API token permission: R2 write.
        """
        flow = event_flows.remove_r2_rules(
            self._context(self.settings), bucket=bucket, queue=queue, rule_ids=rule_ids, jurisdiction=jurisdiction
        )
        return self._run(flow)

    def create_queue(
        self,
        name: str,
        *,
        delivery_delay: float | timedelta | str | None = None,
        message_retention_period: float | timedelta | str | None = None,
        jurisdiction: str | None = None,
    ) -> Queue:
        """
        Create a queue (no consumer: see :meth:`create_consumer`).

        :param name: Cloudflare's rule: 1 to 63 lowercase letters, digits or '-', starting and ending with a
            letter or digit (and not 32 hex characters, which would read as a queue id).
        :param delivery_delay: whole seconds (or a ``timedelta``) every message waits before its first
            delivery; 0 to 86,400.
        :param message_retention_period: how long messages are kept (60 s to 14 days; 24 h on the Free plan).
        :param jurisdiction: where the queue's data is kept: ``"eu"``, ``"us"`` or ``"fedramp"`` (default:
            anywhere); a dead-letter queue the service creates for it follows it.
        """
        settings = queue_settings(delivery_delay=delivery_delay, message_retention_period=message_retention_period)
        validate_jurisdiction(jurisdiction)
        return self._run(
            admin_flows.create_queue(
                self._context(self.settings), name=name, settings=settings, jurisdiction=jurisdiction
            )
        )

    def update_queue(
        self,
        queue: str,
        *,
        delivery_delay: float | timedelta | str | None = None,
        message_retention_period: float | timedelta | str | None = None,
        delivery_paused: bool | None = None,
    ) -> Queue:
        """Change the settings given of the queue named (the others stay as they are)."""
        settings = queue_settings(
            delivery_delay=delivery_delay,
            message_retention_period=message_retention_period,
            delivery_paused=delivery_paused,
        )
        return self._run(admin_flows.update_queue(self._context(self.settings), queue=queue, settings=settings))

    def delete_queue(self, queue: str) -> str:
        """
        Delete a queue and every message in it (irreversible); returns its id. Like every call that changes
        a queue, it acts only on ``queue`` as given (never the hook's default queue), and a name resolved
        from the cache is confirmed with the service first (``api.flows.resolve_named_queue``).
        """
        return self._run(admin_flows.delete_queue(self._context(self.settings), queue=queue))

    def pause_delivery(self, queue: str) -> Queue:
        """Pause delivery: pushes are still kept, pulls are refused (409) until :meth:`resume_delivery`."""
        return self.update_queue(queue, delivery_paused=True)

    def resume_delivery(self, queue: str) -> Queue:
        """Resume delivery after :meth:`pause_delivery`."""
        return self.update_queue(queue, delivery_paused=False)

    def purge_queue(
        self,
        queue: str,
        *,
        wait: bool = True,
        timeout: float | timedelta = 300,
        poll_interval: float | timedelta = 5,
    ) -> PurgeStatus:
        """
        Delete every message in the queue (irreversible). The service purges in the background: with
        ``wait``, poll its status every ``poll_interval`` until it completes, at most ``timeout``.
        """
        flow = admin_flows.purge_queue(
            self._context(self.settings),
            queue=queue,
            wait=wait,
            timeout=interval(timeout, "timeout"),
            poll_interval=interval(poll_interval, "poll_interval"),
        )
        return self._run(flow)

    def purge_status(self, queue: str | None = None) -> PurgeStatus:
        """The last purge of the queue: when it started, whether it completed."""
        return self._run(admin_flows.purge_status(self._context(self.settings), queue=queue))

    def create_consumer(
        self,
        queue: str,
        *,
        batch_size: int | str | None = None,
        max_retries: int | str | None = None,
        retry_delay: float | timedelta | str | None = None,
        visibility_timeout: float | timedelta | str | None = None,
        dead_letter_queue: str | None = None,
    ) -> Consumer:
        """
        Add an HTTP pull consumer to the queue (a queue has one consumer); settings left ``None`` take
        the service's defaults (batch 5, 3 retries, no delay, 30 s visibility, no dead-letter queue).

        :param batch_size: messages per pull by default (1 to 100).
        :param max_retries: retries before a message is dead-lettered or deleted (0 to 100).
        :param retry_delay: whole seconds (or a ``timedelta``) a retried message waits.
        :param visibility_timeout: seconds (or a ``timedelta``) a pull leases its messages for by default.
        :param dead_letter_queue: the queue name exhausted messages go to (created by the service if missing).
        """
        settings = ConsumerSettings(batch_size, max_retries, retry_delay, visibility_timeout, dead_letter_queue)
        return self._run(admin_flows.create_consumer(self._context(self.settings), queue=queue, settings=settings))

    def update_consumer(
        self,
        queue: str,
        consumer_id: str | None = None,
        *,
        batch_size: int | str | None = None,
        max_retries: int | str | None = None,
        retry_delay: float | timedelta | str | None = None,
        visibility_timeout: float | timedelta | str | None = None,
        dead_letter_queue: str | None = None,
    ) -> Consumer:
        """
        Change the given settings of the queue's HTTP pull consumer (or ``consumer_id``); the others stay;
        ``dead_letter_queue=""`` removes the dead-letter queue. A Worker consumer is refused, and a
        change made by someone else between the read and the replace fails the call
        (:class:`~airflow_provider_cfqueues.api.errors.CloudflareQueuesConflictError`) instead of being undone.
        """
        settings = ConsumerSettings(batch_size, max_retries, retry_delay, visibility_timeout, dead_letter_queue)
        settings_ = self.settings
        # updates of one queue's consumer in this process go one at a time: each reads what the one before
        # it wrote (across processes, the read-again check of the flow catches a change made in between)
        with _CONSUMER_UPDATES[(settings_.base_url, settings_.account_id, queue)]:
            return self._run(
                admin_flows.update_consumer(
                    self._context(settings_), queue=queue, consumer_id=consumer_id, settings=settings
                )
            )

    def delete_consumer(self, queue: str, consumer_id: str | None = None) -> str:
        """Remove the queue's HTTP pull consumer (or ``consumer_id``); returns its id."""
        return self._run(
            admin_flows.delete_consumer(self._context(self.settings), queue=queue, consumer_id=consumer_id)
        )

    # -- operations (async, for triggers) ------------------------------------------------------

    async def apush_messages(
        self,
        messages: Iterable[Any],
        *,
        queue: str | None = None,
        delay_seconds: float | None = None,
        content_type: str | None = None,
        preserve_order: bool = False,
    ) -> PushResult:
        """Async :meth:`push_messages`."""
        ctx = self._context(await self.aget_settings())
        return await self._arun(
            flows.push_messages(
                ctx,
                messages=messages,
                queue=queue,
                delay_seconds=delay_seconds,
                content_type=content_type,
                preserve_order=preserve_order,
            )
        )

    async def apull_messages(
        self,
        *,
        queue: str | None = None,
        batch_size: int | None = None,
        visibility_timeout: float | timedelta | None = None,
    ) -> PullResult:
        """Async :meth:`pull_messages`."""
        ctx = self._context(await self.aget_settings())
        return await self._arun(
            flows.pull_messages(ctx, queue=queue, batch_size=batch_size, visibility_timeout=visibility_timeout)
        )

    async def apeek_messages(self, *, queue: str | None = None, batch_size: int | None = None) -> PeekResult:
        """Async :meth:`peek_messages`."""
        return await self._arun(
            flows.peek_messages(self._context(await self.aget_settings()), queue=queue, batch_size=batch_size)
        )

    async def apurge_messages(self, queue: str, refs: Iterable[Any]) -> PurgeMessagesResult:
        """Async :meth:`purge_messages`."""
        return await self._arun(flows.purge_messages(self._context(await self.aget_settings()), queue=queue, refs=refs))

    async def acollect_messages(
        self,
        *,
        queue: str | None = None,
        batch_size: int = MAX_PULL_BATCH_SIZE,
        max_messages: int = MAX_PULL_BATCH_SIZE,
        visibility_timeout: float | timedelta | None = None,
        enough: Callable[[list[PulledMessage]], bool] | None = None,
    ) -> flows.Collected:
        """Async :meth:`collect_messages`."""
        ctx = self._context(await self.aget_settings())
        return await self._arun(
            flows.collect_messages(
                ctx,
                queue=queue,
                batch_size=batch_size,
                max_messages=max_messages,
                visibility_timeout=visibility_timeout,
                enough=enough,
            )
        )

    async def aack_messages(
        self, *, queue: str | None = None, acks: Iterable[Any] = (), retries: Iterable[Any] = ()
    ) -> AckResult:
        """Async :meth:`ack_messages`."""
        ctx = self._context(await self.aget_settings())
        return await self._arun(flows.ack_messages(ctx, queue=queue, acks=acks, retries=retries))

    async def aget_metrics(self, queue: str | None = None) -> QueueMetrics:
        """Async :meth:`get_metrics`."""
        return await self._arun(flows.get_metrics(self._context(await self.aget_settings()), queue=queue))

    async def aget_queue(self, queue: str | None = None) -> Queue:
        """Async :meth:`get_queue`."""
        return await self._arun(flows.get_queue(self._context(await self.aget_settings()), queue=queue))

    async def apurge_status(self, queue: str | None = None) -> PurgeStatus:
        """Async :meth:`purge_status`."""
        return await self._arun(admin_flows.purge_status(self._context(await self.aget_settings()), queue=queue))
