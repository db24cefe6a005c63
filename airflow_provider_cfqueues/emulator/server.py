"""
A small threaded HTTP/1.1 server for the emulator: keep-alive, ``TCP_NODELAY``, and every answer sent
with a single write. (``http.server`` writes headers and body separately, which costs ~40 ms per
keep-alive request on Linux through Nagle's algorithm and delayed ACKs.)

It holds up against hostile clients: request lines, headers (their size and their number) and bodies
are bounded; a body shorter than its ``Content-Length`` is not processed; a connection gets
``idle_timeout`` seconds to start a request and ``request_timeout`` seconds to send all of it, then is
closed (a reaper thread enforces both, so a client dripping one byte at a time cannot hold it).
"""

from __future__ import annotations

import contextlib
import logging
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

MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 65_536
MAX_HEADERS = 100
IDLE_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0


class _BadRequest(Exception):
    pass


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
                    self.wfile.write(error_reply(400, 10208, str(err)).encode(keep_alive=False))
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
                self.wfile.write(reply.encode(keep_alive))
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
        if headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise _BadRequest("malformed Content-Length") from None
            if length < 0 or length > MAX_REQUEST_BYTES:
                raise _BadRequest("request body too large")
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                raise _BadRequest(f"the body ended after {len(body)} of its {length} bytes (Content-Length)")
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        return method, target, headers, body, keep_alive

    def _read_chunked(self) -> bytes:
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
            if total > MAX_REQUEST_BYTES:
                raise _BadRequest("request body too large")
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
    ) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
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
