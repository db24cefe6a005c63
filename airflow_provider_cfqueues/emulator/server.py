"""
A small threaded HTTP/1.1 server for the emulator: keep-alive, ``TCP_NODELAY``, and every answer sent
with a single write. (``http.server`` writes headers and body separately, which costs ~40 ms per
keep-alive request on Linux through Nagle's algorithm and delayed ACKs.)
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from typing import Any

from .app import EmulatorApp, Reply, error_reply

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 65_536


class _BadRequest(Exception):
    pass


class _ConnectionHandler(socketserver.StreamRequestHandler):
    rbufsize = 65_536
    wbufsize = 0  # unbuffered: each wfile.write() is one sendall()
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        while True:
            try:
                request = self._read_request()
            except _BadRequest as err:
                self.wfile.write(error_reply(400, 10208, str(err)).encode(keep_alive=False))
                return
            except OSError:
                return
            if request is None:
                return
            method, target, headers, body, keep_alive = request
            try:
                reply = self.server.app.handle(method, target, headers, body)
            except Exception:
                log.exception("emulator failed on %s %s", method, target.partition("?")[0])
                reply = error_reply(500, 15000, "UnknownInternalError: the emulator failed; see its log")
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
        try:
            method, target, version = line.decode("latin-1").split()
        except ValueError:
            raise _BadRequest("malformed request line") from None
        headers: dict[str, str] = {}
        while True:
            header = self.rfile.readline(MAX_LINE_BYTES + 1)
            if header in (b"\r\n", b"\n", b""):
                break
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
            if size == 0:
                while self.rfile.readline(MAX_LINE_BYTES + 1) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BYTES:
                raise _BadRequest("request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(MAX_LINE_BYTES + 1)


class EmulatorHTTPServer(socketserver.ThreadingTCPServer):
    """Threaded TCP server (one thread per connection) that hands parsed requests to an :class:`EmulatorApp`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _ConnectionHandler)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

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
