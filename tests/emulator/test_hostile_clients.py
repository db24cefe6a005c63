"""
The emulator against bad input and hostile clients: every bad request gets a Cloudflare-shaped 4xx
(never a 500), memory and time per connection are bounded, and the CLI fails in one line.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator

from ..raw_api import RawApi


@pytest.fixture
def strict() -> Iterator[CloudflareQueuesEmulator]:
    """An emulator with short connection timeouts (1 s idle, 1 s per request)."""
    with CloudflareQueuesEmulator(idle_timeout=1, request_timeout=1) as emulator:
        yield emulator


def raw_exchange(emulator: CloudflareQueuesEmulator, data: bytes, wait: float = 5) -> bytes:
    """Send raw bytes on a new connection; return everything the server answers before closing."""
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=wait) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def status_and_code(answer: bytes) -> tuple[int, int]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["errors"][0]["code"]


@pytest.mark.parametrize(
    ("case", "path", "body", "code"),
    [
        ("nested JSON", "/messages", b'{"body":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 10208),
        ("lone surrogate in a text body", "/messages", b'{"body":"\\ud800","content_type":"text"}', 10207),
        ("lone surrogate in a json body", "/messages", b'{"body":{"k":"\\udfff"}}', 10207),
        ("not JSON", "/messages/batch", b"{nope", 10208),
        ("fractional delay", "/messages", b'{"body":{"a":1},"delay_seconds":0.5}', 10203),
    ],
)
def test_bad_bodies_get_a_4xx(emulator: CloudflareQueuesEmulator, case: str, path: str, body: bytes, code: int) -> None:
    queue = emulator.create_queue("q")
    api = RawApi(emulator)
    response = api.session.post(f"{api.base}/{queue.id}{path}", data=body, timeout=10)
    assert response.status_code == 400, case
    assert response.json()["errors"][0]["code"] == code
    assert emulator.metrics("q")["backlog_count"] == 0


def test_queue_names_with_a_trailing_newline_are_refused(emulator: CloudflareQueuesEmulator) -> None:
    api = RawApi(emulator)
    assert api.error("POST", "", {"queue_name": "orders\n"})[:2] == (400, 100128)


@pytest.mark.parametrize(
    ("case", "request_bytes"),
    [
        ("negative chunk size", b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n"),
        ("too many headers", b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n"),
        ("header line too long", b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"),
        ("request line too long", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"),
        ("negative Content-Length", b"POST /x HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
        ("Content-Length too large", b"POST /x HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"),
    ],
)
def test_malformed_requests_get_a_400_and_a_closed_connection(
    strict: CloudflareQueuesEmulator, case: str, request_bytes: bytes
) -> None:
    answer = raw_exchange(strict, request_bytes)
    assert status_and_code(answer) == (400, 10208), case


def test_a_body_shorter_than_its_content_length_is_not_processed(strict: CloudflareQueuesEmulator) -> None:
    queue = strict.create_queue("q")
    body = b'{"body":{"a":1}}'
    head = (
        f"POST /client/v4/accounts/{strict.account_id}/queues/{queue.id}/messages HTTP/1.1\r\n"
        f"Authorization: Bearer {strict.token}\r\nContent-Length: {len(body) + 50}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)  # the client stops sending: 50 bytes never come
        answer = sock.recv(65536)
    assert status_and_code(answer) == (400, 10208)
    assert strict.metrics("q")["backlog_count"] == 0


def test_slow_and_idle_connections_are_closed(strict: CloudflareQueuesEmulator) -> None:
    sockets = [socket.create_connection(("127.0.0.1", strict.port), timeout=5) for _ in range(300)]
    try:
        for sock in sockets[:150]:
            sock.sendall(b"GET /client/v4/ HTTP/1.1\r\nX-Slow: ")  # slowloris: headers that never end
        started = time.monotonic()
        assert all(sock.recv(100) == b"" for sock in sockets)  # each closed by the server, unanswered
        assert time.monotonic() - started < 4  # 1 s to start, 1 s per request, checked every 0.25 s
    finally:
        for sock in sockets:
            sock.close()
    still_serving = requests.get(f"{strict.base_url}/accounts/{strict.account_id}/queues", timeout=5)
    assert still_serving.json()["errors"][0]["code"] == 9106  # answered: no token


def test_a_dripping_client_cannot_hold_a_connection(strict: CloudflareQueuesEmulator) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        started = time.monotonic()
        try:
            for byte in b"GET /client/v4/accounts HTTP/1.1\r\nX-A: " + b"a" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert time.monotonic() - started < 3  # closed after the 1 s request timeout


# -- the command line ------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_cfqueues.emulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_errors_are_one_line_with_the_fix() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = cli("--port", str(port))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    fix = "pick another with --port, or --port 0 for a free one"
    assert result.stderr.strip() == f"cfqueues-emulator: port {port} on 127.0.0.1 is in use: {fix}"
    bad = cli("--queue", "no spaces")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "1 to 63 letters" in bad.stderr
    twice = cli("--queue", "a", "--queue", "a")
    assert twice.returncode == 2 and "--queue a is given more than once" in twice.stderr
    negative = cli("--purge-seconds", "-1")
    assert negative.returncode == 2 and "--purge-seconds must be >= 0" in negative.stderr


def test_cli_prints_what_a_client_needs_and_logs_requests_when_verbose() -> None:
    result = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_cfqueues.emulator",
            "--verbose",
            "--token",
            "tok-123",
            "--read-only-token",
            "reader-9",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert result.stdout is not None and result.stderr is not None
        base_url = result.stdout.readline().strip()
        banner = [result.stderr.readline() for _ in range(4)]
        assert "account id: 023e105f4ecef8ad9ca31a8372d0c353" in banner[1] and "token:      tok-123" in banner[2]
        exported = banner[3].strip().removeprefix("export AIRFLOW_CONN_CLOUDFLARE_QUEUES_DEFAULT=").strip("'")
        assert json.loads(exported)["host"] == base_url and json.loads(exported)["password"] == "tok-123"
        requests.get(
            f"{base_url}/accounts/023e105f4ecef8ad9ca31a8372d0c353/queues",
            headers={"Authorization": "Bearer tok-123"},
            timeout=5,
        )
        line = result.stderr.readline()
        assert "GET /client/v4/accounts/023e105f4ecef8ad9ca31a8372d0c353/queues 200" in line and " ms" in line
        assert "tok-123" not in line
        refused = requests.post(
            f"{base_url}/accounts/023e105f4ecef8ad9ca31a8372d0c353/queues",
            headers={"Authorization": "Bearer reader-9"},
            json={"queue_name": "x"},
            timeout=5,
        )
        assert refused.status_code == 403  # the read-only token may not create queues
    finally:
        result.terminate()
        result.communicate(timeout=10)
