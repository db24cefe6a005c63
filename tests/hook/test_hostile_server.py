"""
The client against a broken or hostile server (a small stdlib server on loopback): bounded memory,
one deadline per request, no redirects, no silent zeros, nested JSON; sync and async alike.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_cfqueues.api.errors import (
    CloudflareQueuesConfigError,
    CloudflareQueuesError,
    CloudflareQueuesResponseError,
    CloudflareQueuesServerError,
    CloudflareQueuesTransportError,
)
from airflow_provider_cfqueues.api.retry import RetryPolicy
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import TEST_TOKEN

ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
QUEUE = "0" * 32

Behaviour = Callable[[socket.socket], None]


class HostileServer:
    """Accepts connections and hands each to ``behaviour`` (which writes whatever it likes)."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.requests += 1
                self.behaviour(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Behaviour:
    def send(conn: socket.socket) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Content-Type: application/json"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return send


def drip(conn: socket.socket) -> None:
    """A valid answer, one byte every 0.2 s: each read is quick, the whole never ends in time."""
    body = json.dumps({"success": True, "result": {"backlog_count": 1}}).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nContent-Type: application/json\r\n\r\n".encode()
    for byte in head + body:
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


def drip_headers(conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


def huge(conn: socket.socket) -> None:
    """600 MB announced, streamed until the client hangs up."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b" " * 1_000_000
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    for _ in range(600):
        conn.sendall(framed)


def huge_declared(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 600000000\r\n\r\n{")


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Behaviour], CloudflareQueuesHook]]:
    servers: list[HostileServer] = []

    def start(behaviour: Behaviour) -> CloudflareQueuesHook:
        server = HostileServer(behaviour)
        servers.append(server)
        conn = {
            "conn_type": "cloudflare_queues",
            "host": f"http://127.0.0.1:{server.port}/client/v4",
            "password": TEST_TOKEN,
            "extra": {"account_id": ACCOUNT, "timeout": 2},
        }
        monkeypatch.setenv("AIRFLOW_CONN_HOSTILE", json.dumps(conn))
        return CloudflareQueuesHook("hostile", queue=QUEUE, retry_policy=RetryPolicy(max_attempts=1))

    yield start
    for server in servers:
        server.close()


def both(hook: CloudflareQueuesHook, operation: str = "get_metrics") -> list[BaseException]:
    """The error of the sync call and of its async twin."""
    errors: list[BaseException] = []
    try:
        getattr(hook, operation)()
    except CloudflareQueuesError as err:
        errors.append(err)
    try:
        asyncio.run(getattr(hook, "a" + operation)())
    except CloudflareQueuesError as err:
        errors.append(err)
    return errors


@pytest.mark.parametrize("behaviour", [huge, huge_declared], ids=["streamed", "declared"])
def test_a_huge_answer_is_refused_while_it_streams(
    serve: Callable[[Behaviour], CloudflareQueuesHook], behaviour: Behaviour
) -> None:
    hook = serve(behaviour)
    started = time.monotonic()
    errors = both(hook)
    assert [type(e) for e in errors] == [CloudflareQueuesResponseError] * 2
    assert all("larger than 33,554,432 bytes" in str(e) for e in errors)
    assert time.monotonic() - started < 10  # refused at 32 MB, not after reading 600 MB


@pytest.mark.parametrize("behaviour", [drip, drip_headers], ids=["body", "headers"])
def test_one_deadline_covers_the_whole_request(
    serve: Callable[[Behaviour], CloudflareQueuesHook], behaviour: Behaviour
) -> None:
    hook = serve(behaviour)  # timeout 2 s; each byte arrives 0.2 s after the last
    for call in (hook.get_metrics, lambda: asyncio.run(hook.aget_metrics())):
        started = time.monotonic()
        with pytest.raises(CloudflareQueuesTransportError, match="no answer within 2 s") as info:
            call()
        assert time.monotonic() - started < 3.5
        assert info.value.outcome_unknown


def test_redirects_are_never_followed(serve: Callable[[Behaviour], CloudflareQueuesHook]) -> None:
    target = "https://elsewhere.example/client/v4/accounts/x?token=leak"
    hook = serve(answer(307, b"", {"Location": target}))
    errors = both(hook)
    assert [type(e) for e in errors] == [CloudflareQueuesResponseError] * 2
    for error in errors:
        assert "redirect to https://elsewhere.example/client/v4/accounts/x; redirects are not followed" in str(error)
        assert "leak" not in str(error)


@pytest.mark.parametrize("operation", ["get_metrics", "pull_messages"])
def test_a_successful_answer_without_a_result_is_an_error(
    serve: Callable[[Behaviour], CloudflareQueuesHook], operation: str
) -> None:
    hook = serve(answer(200, json.dumps({"success": True, "errors": [], "messages": []}).encode()))
    errors = both(hook, operation)
    assert [type(e) for e in errors] == [CloudflareQueuesResponseError] * 2
    assert all("a successful answer without a result" in str(e) for e in errors)


@pytest.mark.parametrize(
    ("status", "error"), [(200, CloudflareQueuesTransportError), (500, CloudflareQueuesServerError)]
)
def test_deeply_nested_json_is_a_typed_error(
    serve: Callable[[Behaviour], CloudflareQueuesHook], status: int, error: type[CloudflareQueuesError]
) -> None:
    nested = b'{"success":true,"errors":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert [type(e) for e in both(serve(answer(status, nested)))] == [error] * 2


def test_a_dns_failure_means_not_sent_in_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    conn = {
        "conn_type": "cloudflare_queues",
        "host": "https://api.cloudflare.invalid/client/v4",
        "password": TEST_TOKEN,
        "extra": {"account_id": ACCOUNT},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NOWHERE", json.dumps(conn))
    hook = CloudflareQueuesHook("nowhere", queue=QUEUE, retry_policy=RetryPolicy(max_attempts=1))
    errors = both(hook)
    assert [type(e) for e in errors] == [CloudflareQueuesTransportError] * 2
    assert [e.outcome_unknown for e in errors] == [False, False]


@pytest.mark.parametrize(
    ("host", "password", "match"),
    [
        ("http://[::1", TEST_TOKEN, "is malformed"),
        ("http://127.0.0.1:99999/client/v4", TEST_TOKEN, "is malformed"),
        ("https://user:hunter2@api.cloudflare.com", TEST_TOKEN, "carries credentials"),
        ("", "abc\r\nX-Evil: 1", "holds a line break at position 4"),
        ("", "tökén", "non-ASCII or control character at position 2"),
        ("", "two words", "a space at position 4"),
    ],
)
def test_connection_values_that_would_leak_or_break_are_refused(
    monkeypatch: pytest.MonkeyPatch, host: str, password: str, match: str
) -> None:
    conn = {"conn_type": "cloudflare_queues", "host": host, "password": password, "extra": {"account_id": ACCOUNT}}
    monkeypatch.setenv("AIRFLOW_CONN_BAD", json.dumps(conn))
    with pytest.raises(CloudflareQueuesConfigError, match=match) as info:
        CloudflareQueuesHook("bad").get_metrics(QUEUE)
    assert "hunter2" not in str(info.value) and password not in str(info.value)
