"""
A small threaded HTTP/1.1 server for the emulator: keep-alive, ``TCP_NODELAY``, and every answer sent
with a single write. (``http.server`` writes headers and body separately, which costs ~40 ms per
keep-alive request on Linux through Nagle's algorithm and delayed ACKs.)

It holds up against hostile clients: request lines, headers (their size and their number) are
bounded; a body is read only when its endpoint takes that many bytes (:meth:`EmulatorApp.body_limit`:
1 MiB for pushes, 256 KiB for acks and purges, 64 KiB for the rest; 413 and the connection closed
otherwise); a body shorter than its ``Content-Length`` is not processed; at most ``max_connections``
connections are served at once (a further one gets 503 and is closed); a connection gets
``idle_timeout`` seconds to start a request and ``request_timeout`` seconds to send all of it, then is
closed (a reaper thread enforces both, so a client dripping one byte at a time cannot hold it).
Memory stays bounded: at most ``max_connections`` bodies of at most 1 MiB, of which at most
:data:`~.app.MAX_HANDLED_AT_ONCE` are parsed at a time (docs/emulator.md gives the measured peak).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import socketserver
import threading
import time
from typing import Any

from .app import EmulatorApp, Reply, error_reply

log = logging.getLogger(__name__)
#: one line per request (method, path, status, milliseconds); quiet unless the CLI's --verbose
request_log = logging.getLogger(f"{__name__}.requests")
request_log.setLevel(logging.WARNING)

MAX_LINE_BYTES = 65_536
MAX_CONNECTIONS = 64
_DIGITS = re.compile(r"[0-9]{1,12}")
MAX_HEADERS = 100
IDLE_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: int = 10208) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _TooLarge(method: str, target: str, length: int, limit: int) -> _BadRequest:
    path = target.partition("?")[0]
    return _BadRequest(
        f"request body of {length:,} bytes; {method} {path} takes at most {limit:,} (the emulator reads no more)",
        413,
        10208,
    )


class _ConnectionHandler(socketserver.StreamRequestHandler):
    rbufsize = 65_536
    wbufsize = 0  # unbuffered: each wfile.write() is one sendall()
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection.settimeout(max(self.server.idle_timeout, self.server.request_timeout))
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        while True:
            self.server.close_at(self.connection, time.monotonic() + self.server.idle_timeout)
            try:
                request = self._read_request()
            except _BadRequest as err:
                with contextlib.suppress(OSError):
                    self.wfile.write(error_reply(err.status, err.code, str(err)).encode(keep_alive=False))
                return
            except OSError:
                return
            self.server.close_at(self.connection, None)  # answering takes what it takes
            if request is None:
                return
            method, target, headers, body, keep_alive = request
            started = time.perf_counter()
            try:
                reply = self.server.app.handle(method, target, headers, body)
            except Exception:
                log.exception("emulator failed on %s %s", method, target.partition("?")[0])
                reply = error_reply(500, 15000, "UnknownInternalError: the emulator failed; see its log")
            request_log.info(
                "%s %s %s %.1f ms",
                method,
                target.partition("?")[0],
                "dropped" if reply.drop else reply.status,
                (time.perf_counter() - started) * 1000,
            )
            if reply.drop:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            try:
                self.wfile.write(reply.encode(keep_alive, head=method == "HEAD"))
            except OSError:
                return
            if not keep_alive:
                return

    def _read_request(self) -> tuple[str, str, dict[str, str], bytes, bool] | None:
        line = self.rfile.readline(MAX_LINE_BYTES + 1)
        while line in (b"\r\n", b"\n"):
            line = self.rfile.readline(MAX_LINE_BYTES + 1)
        if not line:
            return None
        self.server.close_at(self.connection, time.monotonic() + self.server.request_timeout)
        if len(line) > MAX_LINE_BYTES:
            raise _BadRequest("request line too long")
        try:
            method, target, version = line.decode("latin-1").split()
        except ValueError:
            raise _BadRequest("malformed request line") from None
        headers: dict[str, str] = {}
        while True:
            header = self.rfile.readline(MAX_LINE_BYTES + 1)
            if not header:
                return None  # the client went away (or was cut off) mid-headers: nothing to answer
            if header in (b"\r\n", b"\n"):
                break
            if len(header) > MAX_LINE_BYTES:
                raise _BadRequest("header line too long")
            if len(headers) >= MAX_HEADERS:
                raise _BadRequest(f"more than {MAX_HEADERS} headers")
            name, sep, value = header.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest("malformed header line")
            headers[name.strip().lower()] = value.strip()
        limit = self.server.app.body_limit(method, target)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._continue(headers)
            body = self._read_chunked(limit)
        else:
            declared = headers.get("content-length", "0").strip()
            if not _DIGITS.fullmatch(declared):  # int() would take "1_0", "+5" or " 7"
                raise _BadRequest(f"malformed Content-Length {declared[:20]!r}")
            length = int(declared)
            if length > limit:  # refused before reading a byte of it
                raise _TooLarge(method, target, length, limit)
            self._continue(headers)
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                raise _BadRequest(f"the body ended after {len(body)} of its {length} bytes (Content-Length)")
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        return method, target, headers, body, keep_alive

    def _continue(self, headers: dict[str, str]) -> None:
        if headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(MAX_LINE_BYTES + 1)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequest("malformed chunk size") from None
            if size < 0:
                raise _BadRequest("negative chunk size")
            if size == 0:
                while self.rfile.readline(MAX_LINE_BYTES + 1) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > limit:
                raise _BadRequest(f"request body over {limit:,} bytes, the most this endpoint takes", 413, 10208)
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise _BadRequest("the body ended inside a chunk")
            chunks.append(chunk)
            self.rfile.readline(MAX_LINE_BYTES + 1)


class EmulatorHTTPServer(socketserver.ThreadingTCPServer):
    """Threaded TCP server (one thread per connection) that hands parsed requests to an :class:`EmulatorApp`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        app: EmulatorApp,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._admitted: set[Any] = set()
        self.connections_refused = 0
        self._connections: dict[socket.socket, float | None] = {}  # connection -> when to close it
        self._connections_lock = threading.Lock()
        self.connections_accepted = 0
        self._closing = threading.Event()  # before binding: a failed bind calls server_close()
        super().__init__(address, _ConnectionHandler)
        self._reaper = threading.Thread(target=self._reap, name="cfqueues-emulator-reaper", daemon=True)
        self._reaper.start()

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own, or, past ``max_connections``, answer 503 and close it."""
        if not self._slots.acquire(blocking=False):
            self.connections_refused += 1
            reply = error_reply(503, 15000, f"the emulator serves at most {self.max_connections} connections at once")
            with contextlib.suppress(OSError):
                request.sendall(reply.encode(keep_alive=False))
            self.shutdown_request(request)
            return
        with self._connections_lock:
            self._admitted.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            with self._connections_lock:
                admitted = request in self._admitted
                self._admitted.discard(request)
            if admitted:
                self._slots.release()

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections[connection] = None
                self.connections_accepted += 1
            else:
                self._connections.pop(connection, None)

    @property
    def connections_open(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_at(self, connection: socket.socket, deadline: float | None) -> None:
        """Close ``connection`` at ``deadline`` (monotonic seconds) unless it is called again first."""
        with self._connections_lock:
            if connection in self._connections:
                self._connections[connection] = deadline

    def _reap(self) -> None:
        while not self._closing.wait(min(0.25, self.idle_timeout / 4, self.request_timeout / 4)):
            now = time.monotonic()
            with self._connections_lock:
                late = [c for c, deadline in self._connections.items() if deadline is not None and deadline <= now]
                for connection in late:
                    self._connections[connection] = None
            for connection in late:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def close_connections(self) -> None:
        """Close every open keep-alive connection (used when stopping)."""
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request is normal under fault injection and load; stay quiet.
        pass


__all__ = ["EmulatorHTTPServer", "Reply"]
