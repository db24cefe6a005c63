"""
The lines that do I/O: send an :class:`~airflow_provider_cfqueues.api.operations.ApiRequest` and
return a :class:`~airflow_provider_cfqueues.api.operations.RawResponse`, with ``requests`` (sync) or
``httpx`` (async), so that both paths behave the same against a broken or hostile server:

* one deadline per request covers connecting, sending, the headers and the whole body (a server
  that drips a byte at a time cannot hold a request past it);
* an answer larger than :data:`MAX_RESPONSE_BYTES` is refused while it streams in, before it fills
  memory (its ``Content-Length``, when given, is checked first);
* redirects are never followed (the answer is handed on as a 3xx, which the API layer refuses);
* a request that never left (connection refused, DNS failure, connect timeout) is "not sent";
  anything else that fails mid-way has an unknown outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from ..api.errors import CloudflareQueuesConfigError, CloudflareQueuesResponseError, CloudflareQueuesTransportError
from ..api.operations import ApiRequest, RawResponse
from .connection import is_loopback

#: The largest answer read. The largest the API sends (a pull of 100 messages of 128 KB, bodies in
#: base64) is about 18 MB.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Seconds allowed for a connection to be set up.
CONNECT_TIMEOUT = 10.0
_CHUNK = 65_536


# -- the deadline of a sync request ----------------------------------------------------------------


@dataclass(order=True)
class _Watch:
    deadline: float
    seq: int
    expire: Callable[[], None] = field(compare=False)
    active: bool = field(default=True, compare=False)


class DeadlineWatchdog:
    """One daemon thread for the process that calls a request's ``expire`` when its deadline passes
    (it shuts the request's socket down, which ends whatever blocking read the request is in)."""

    def __init__(self) -> None:
        self._heap: list[_Watch] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, expire: Callable[[], None]) -> _Watch:
        entry = _Watch(deadline, next(self._seq), expire)
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cfqueues-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:  # wake the thread only when the earliest deadline changed
                self._cond.notify()
        return entry

    def cancel(self, entry: _Watch) -> None:
        entry.active = False  # dropped from the heap when it comes up

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and not self._heap[0].active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0].deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)
            if entry.active:
                entry.expire()


WATCHDOG = DeadlineWatchdog()

#: the connections a sync request in this context has used (so that its deadline can shut them)
_IN_USE: contextvars.ContextVar[list[HTTPConnection] | None] = contextvars.ContextVar("cfqueues_in_use", default=None)


class _TrackedHTTPConnection(HTTPConnection):
    """A connection that registers with the request using it (see :data:`_IN_USE`)."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        in_use = _IN_USE.get()
        if in_use is not None:
            in_use.append(self)
        super().request(*args, **kwargs)


class _TrackedHTTPSConnection(_TrackedHTTPConnection, HTTPSConnection):
    """The same, over TLS."""


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections can be shut by a request's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


def _shut(connections: list[HTTPConnection]) -> Callable[[], None]:
    def expire() -> None:
        for connection in connections:
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)

    return expire


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and everything it wraps (requests and urllib3 nest errors in ``reason`` and ``args``)."""
    seen: set[int] = set()
    found: list[BaseException] = []
    pending: list[Any] = [err]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue  # None, or a reason that is a string (ssl.SSLError's)
        seen.add(id(current))
        found.append(current)
        pending.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    return found


def _never_sent(err: BaseException) -> bool:
    """Whether ``err`` (from requests) says the request never reached the server."""
    if isinstance(err, requests.ConnectTimeout):
        return True
    return any(isinstance(cause, NewConnectionError) for cause in _causes(err))  # refused, DNS failure


def plain_http_error(base_url: str, err: BaseException, operation: str) -> CloudflareQueuesConfigError | None:
    """
    The error to raise instead of retrying when a TLS handshake with a loopback address failed: a
    local emulator speaks plain http, and a host written without ``http://`` was taken as https.
    """
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not is_loopback(parts.hostname or ""):
        return None
    tls = next((cause for cause in _causes(err) if isinstance(cause, ssl.SSLError)), None)
    if tls is None:
        return None
    plain = urlunsplit(("http", parts.netloc, parts.path, "", ""))
    return CloudflareQueuesConfigError(
        f"the TLS handshake with {base_url} failed ({getattr(tls, 'reason', None) or tls}): the bundled emulator "
        f"speaks plain http. Set the connection's host to {plain} (with http://; a host without a scheme is "
        "taken as https)",
        operation=operation,
    )


class ReachGuard:
    """
    Which API base URLs this process may send to: any (``None``, the default), or only those allowed (a
    test session's emulators: the pytest plugin sets it, so that a test never reaches a server it did not
    start, whatever connection a DAG names). Checked before every request, sync and async.
    """

    def __init__(self) -> None:
        self.allowed: set[str] | None = None
        self._lock = threading.Lock()

    def restrict(self) -> None:
        """From now on, only allowed base URLs (none yet)."""
        with self._lock:
            if self.allowed is None:
                self.allowed = set()

    def lift(self) -> None:
        with self._lock:
            self.allowed = None

    def allow(self, base_url: str) -> None:
        with self._lock:
            if self.allowed is not None:
                self.allowed.add(base_url.rstrip("/"))

    def disallow(self, base_url: str) -> None:
        with self._lock:
            if self.allowed is not None:
                self.allowed.discard(base_url.rstrip("/"))

    def check(self, base_url: str, operation: str) -> None:
        allowed = self.allowed
        if allowed is not None and base_url.rstrip("/") not in allowed:
            parts = urlsplit(base_url)
            emulators = ", ".join(sorted(allowed)) or "none is running"
            raise CloudflareQueuesConfigError(
                f"this test session lets the provider reach only its emulator ({emulators}); a request to "
                f"{parts.scheme}://{parts.netloc} was stopped before it was sent. Point the connection at the "
                "emulator (the cfqueues_connection fixture, or cfqueues_emulator.airflow_connection_env())",
                operation=operation,
            )


#: the process's reach guard (open unless a test session restricts it)
REACH = ReachGuard()


def send_sync(
    session: requests.Session, base_url: str, request: ApiRequest, timeout: float, max_bytes: int = MAX_RESPONSE_BYTES
) -> RawResponse:
    """Send ``request`` with ``session`` within ``timeout`` seconds in all."""
    REACH.check(base_url, request.operation)
    with total_deadline(timeout) as deadline:
        return _send_sync(session, base_url, request, timeout, max_bytes, deadline)


@contextlib.contextmanager
def total_deadline(seconds: float) -> Iterator[float]:
    """
    Within the block, the connections a :class:`DeadlineAdapter` hands out are shut down once ``seconds``
    have passed, whatever they are doing (a server that drips its answer a byte at a time cannot hold a
    request past it, as a per-read timeout lets it). Yields the deadline (``time.monotonic()``).
    """
    deadline = time.monotonic() + seconds
    in_use: list[HTTPConnection] = []
    token = _IN_USE.set(in_use)
    watch = WATCHDOG.watch(deadline, _shut(in_use))
    try:
        yield deadline
    finally:
        WATCHDOG.cancel(watch)
        _IN_USE.reset(token)


def _send_sync(
    session: requests.Session, base_url: str, request: ApiRequest, timeout: float, max_bytes: int, deadline: float
) -> RawResponse:
    try:
        # prepared here rather than by Session.request: the session's settings are fixed (no cookies,
        # no environment lookups per request), so merging them again for every request is wasted CPU
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=request.method,
            url=base_url + request.path,
            headers={**session.headers, **dict(request.headers)} if request.headers else session.headers,
            data=request.body,
            params=request.params or None,
        )
        response = session.send(
            prepared, timeout=(min(CONNECT_TIMEOUT, timeout), timeout), stream=True, allow_redirects=False
        )
        try:
            body = _read_sync(response, deadline, max_bytes, request)
        finally:
            response.close()
    except requests.RequestException as err:
        wrong_scheme = plain_http_error(base_url, err, request.operation)
        if wrong_scheme is not None:
            raise wrong_scheme from None
        late = time.monotonic() >= deadline
        raise CloudflareQueuesTransportError(
            f"no answer within {timeout:g} s from {base_url}"
            if late
            else f"{type(err).__name__} talking to {base_url}: {err}",
            operation=request.operation,
            outcome_unknown=not _never_sent(err),
        ) from None
    return RawResponse(response.status_code, body, response.headers)


def _read_sync(response: requests.Response, deadline: float, max_bytes: int, request: ApiRequest) -> bytes:
    _check_length(response.headers.get("content-length"), max_bytes, request)
    chunks: list[bytes] = []
    size = 0
    raw = response.raw
    while True:
        if time.monotonic() >= deadline:
            raise requests.ReadTimeout("the whole answer did not arrive in time")
        chunk = raw.read1(_CHUNK, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes, request)
        chunks.append(chunk)


def _check_length(content_length: str | None, max_bytes: int, request: ApiRequest) -> None:
    if content_length is not None and content_length.isdigit() and int(content_length) > max_bytes:
        raise _too_large(max_bytes, request)


def _too_large(max_bytes: int, request: ApiRequest) -> CloudflareQueuesResponseError:
    return CloudflareQueuesResponseError(
        f"the answer is larger than {max_bytes:,} bytes, more than the API ever sends: refused unread "
        "(check the connection's host)",
        operation=request.operation,
    )


# -- async -----------------------------------------------------------------------------------------


async def send_async(
    client: httpx.AsyncClient,
    base_url: str,
    request: ApiRequest,
    token: str,
    timeout: float,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> RawResponse:
    """Send ``request`` with ``client`` within ``timeout`` seconds in all (the sync path's twin)."""
    REACH.check(base_url, request.operation)
    try:
        if sys.version_info >= (3, 11):
            # not wait_for: on 3.11 it drops a cancellation that arrives as the answer does (CPython
            # gh-86296), and a cancelled trigger would go on
            async with asyncio.timeout(timeout):
                return await _exchange(client, base_url, request, token, timeout, max_bytes)
        return await asyncio.wait_for(_exchange(client, base_url, request, token, timeout, max_bytes), timeout)
    except asyncio.TimeoutError:
        raise CloudflareQueuesTransportError(
            f"no answer within {timeout:g} s from {base_url}", operation=request.operation
        ) from None
    except httpx.HTTPError as err:
        wrong_scheme = plain_http_error(base_url, err, request.operation)
        if wrong_scheme is not None:
            raise wrong_scheme from None
        raise CloudflareQueuesTransportError(
            f"{type(err).__name__} talking to {base_url}: {err}",
            operation=request.operation,
            outcome_unknown=not isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout)),
        ) from None


async def _exchange(
    client: httpx.AsyncClient, base_url: str, request: ApiRequest, token: str, timeout: float, max_bytes: int
) -> RawResponse:
    async with client.stream(
        request.method,
        base_url + request.path,
        params=request.params or None,
        content=request.body,
        headers={"Authorization": f"Bearer {token}", **dict(request.headers)},
        timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
        follow_redirects=False,
    ) as response:
        _check_length(response.headers.get("content-length"), max_bytes, request)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes, request)
            chunks.append(chunk)
        return RawResponse(response.status_code, b"".join(chunks), response.headers)
