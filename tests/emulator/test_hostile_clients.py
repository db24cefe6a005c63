"""
The emulator against bad input and hostile clients: every bad request gets a Cloudflare-shaped 4xx
(never a 500), memory and time per connection are bounded, and the CLI fails in one line.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, EmulatorProcess

from ..raw_api import RawApi

pytestmark = pytest.mark.airflow_agnostic  # the emulator alone: run in the Airflow 3 suite only


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
    assert api.error("POST", "", {"queue_name": "orders\n"})[:2] == (400, 11003)


@pytest.mark.parametrize(
    ("case", "request_bytes"),
    [
        ("negative chunk size", b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n"),
        ("too many headers", b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n"),
        ("header line too long", b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"),
        ("request line too long", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"),
        ("negative Content-Length", b"POST /x HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
        ("Content-Length with an underscore", b"POST /x HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n0123456789"),
        ("Content-Length with a sign", b"POST /x HTTP/1.1\r\nContent-Length: +4\r\n\r\nabcd"),
    ],
)
def test_malformed_requests_get_a_400_and_a_closed_connection(
    strict: CloudflareQueuesEmulator, case: str, request_bytes: bytes
) -> None:
    answer = raw_exchange(strict, request_bytes)
    assert status_and_code(answer) == (400, 10208), case


@pytest.mark.parametrize(
    ("endpoint", "suffix", "limit"),
    [("push", "/messages", 1 << 20), ("purge", "/purge", 256 << 10), ("pull", "/messages/pull", 64 << 10)],
)
def test_a_body_over_its_endpoints_limit_is_refused_unread(
    strict: CloudflareQueuesEmulator, endpoint: str, suffix: str, limit: int
) -> None:
    """The limit is the endpoint's largest legal request: the emulator answers 413 before reading the body."""
    queue = strict.create_queue("q")
    head = (
        f"POST /client/v4/accounts/{strict.account_id}/queues/{queue.id}{suffix} HTTP/1.1\r\n"
        f"Authorization: Bearer {strict.token}\r\nContent-Length: {limit + 1}\r\n\r\n"
    ).encode()
    answer = raw_exchange(strict, head)  # not a byte of the body is sent: the answer comes anyway
    assert status_and_code(answer) == (413, 10208), endpoint
    assert f"takes at most {limit:,}".encode() in answer


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
            with contextlib.suppress(OSError):  # past the first 64, the server may have closed it already
                sock.sendall(b"GET /client/v4/ HTTP/1.1\r\nX-Slow: ")  # slowloris: headers that never end
        started = time.monotonic()
        answers = [sock.recv(100) for sock in sockets]
        assert time.monotonic() - started < 4  # 1 s to start, 1 s per request, checked every 0.25 s
    finally:
        for sock in sockets:
            sock.close()
    # at most 64 connections are served: each closed unanswered when it stalls; the others got a 503 at once
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") for answer in answers)
    assert answers.count(b"") >= 64 and strict._server.connections_refused == 300 - answers.count(b"")  # type: ignore[union-attr]
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
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "1 to 63 lowercase letters" in bad.stderr
    for spec, words in [
        ("orders:max_retries=two", "max_retries must be a whole number, got 'two'"),
        ("orders:colour=red", "'colour=red' is not KEY=VALUE with KEY one of max_retries"),
    ]:
        refused = cli("--queue", spec)
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr
    twice = cli("--queue", "a", "--queue", "a")
    assert twice.returncode == 2 and "--queue a is given more than once" in twice.stderr
    for seconds in ("-1", "nan", "inf"):  # a purge that never completes
        refused = cli("--purge-seconds", seconds)
        assert refused.returncode == 2 and "--purge-seconds must be a number of seconds >= 0" in refused.stderr
    for option in ("--token", "--read-only-token"):  # an empty token would let any request in
        empty = cli(option, "")
        assert empty.returncode == 2 and empty.stderr.count("\n") == 1, empty.stderr
        assert f"{option.removeprefix('--').replace('-', '_')} must not be empty" in empty.stderr


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


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (Linux: VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_concurrent_large_bodies_keep_the_emulators_memory_bounded() -> None:
    """
    Six clients send 16 MB to /purge at once (each refused before a byte of it is read), then 64 clients
    each send the largest push body an endpoint takes, made of 350,000 empty JSON objects (the most
    memory per byte to parse): the emulator's peak memory stays bounded, and it keeps answering.
    """
    adversarial = b"[" + b"{}," * ((1 << 20) // 3 - 2) + b"{}]"
    with EmulatorProcess(["q"]) as emulator:
        pid = emulator._process.pid  # type: ignore[union-attr]
        base = f"{emulator.base_url}/accounts/{emulator.account_id}/queues/{emulator.queue_ids['q']}"
        headers = {"Authorization": f"Bearer {emulator.token}", "Content-Type": "application/json"}
        before = _peak_rss_mib(pid)

        def purge(_: int) -> int:
            return requests.post(f"{base}/purge", data=b"x" * (16 << 20), headers=headers, timeout=60).status_code

        def push(_: int) -> int:
            return requests.post(f"{base}/messages", data=adversarial, headers=headers, timeout=60).status_code

        with ThreadPoolExecutor(max_workers=64) as pool:
            purges = list(pool.map(purge, range(6)))
            pushes = list(pool.map(push, range(64)))
        peak = _peak_rss_mib(pid)
        print(f"\nemulator peak RSS: {before:.0f} MiB at start, {peak:.0f} MiB after the concurrent bodies")
        assert set(purges) <= {413, 503}, purges
        assert set(pushes) <= {400, 503}, pushes  # a body that is not one message: refused as such
        assert peak - before < 64 + 8 * 40, (before, peak)  # 64 bodies of 1 MiB, 8 parses at a time
        answer = requests.get(f"{base}/metrics", headers=headers, timeout=10)
        assert answer.status_code == 200 and answer.json()["result"]["backlog_count"] == 0


# -- state that must not be corrupted ----------------------------------------------------------------


def test_dead_letter_cycles_expire_without_recursion(emulator: CloudflareQueuesEmulator) -> None:
    """A -> B -> A, max_retries 0, 600 leased messages each: lease expiry moves them round, one hop a look."""
    a = emulator.create_queue("a", max_retries=0, dead_letter_queue="b").id  # the service creates b, no consumer
    api = RawApi(emulator)
    b = emulator.queue("b").queue_id
    consumer = {"type": "http_pull", "dead_letter_queue": "a", "settings": {"max_retries": 0}}
    api.ok("POST", f"/{b}/consumers", consumer)
    for queue_id in (a, b):
        for start in range(0, 600, 100):
            api.batch(queue_id, [{"body": {"n": n}} for n in range(start, start + 100)])
        for _ in range(6):
            api.pull(queue_id, batch_size=100, visibility_timeout_ms=1000)
    emulator.clock.advance(2)  # every lease expires: each message goes to the other queue
    backlogs = [api.metrics(queue_id)["backlog_count"] for queue_id in (a, b, a, b)]
    assert backlogs == [0, 600, 600, 600]  # a's went to b; b's own came to a when b was next read
    assert api.pull(a, batch_size=5)["messages"]  # still serving, no 500


def test_a_queue_cannot_be_its_own_dead_letter_queue(emulator: CloudflareQueuesEmulator) -> None:
    queue = emulator.create_queue("orders", http_pull=False)
    api = RawApi(emulator)
    assert api.error("POST", f"/{queue.id}/consumers", {"type": "http_pull", "dead_letter_queue": "orders"})[:2] == (
        400,
        100127,
    )
    consumer = api.ok("POST", f"/{queue.id}/consumers", {"type": "http_pull", "dead_letter_queue": "orders-dlq"})
    again = {"type": "http_pull", "dead_letter_queue": "orders"}
    assert api.error("PUT", f"/{queue.id}/consumers/{consumer['consumer_id']}", again)[:2] == (400, 100127)
    # renaming the queue to its dead-letter queue's name would make it its own dead-letter queue
    api.ok("DELETE", "/" + emulator.queue("orders-dlq").queue_id)  # the one the service created
    assert api.error("PATCH", f"/{queue.id}", {"queue_name": "orders-dlq"})[:2] == (400, 100128)
    assert api.ok("GET", f"/{queue.id}")["queue_name"] == "orders"


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_a_queue_update_with_one_bad_setting_changes_nothing(emulator: CloudflareQueuesEmulator, method: str) -> None:
    queue = emulator.create_queue("orders", delivery_delay=5)
    api = RawApi(emulator)
    before = api.ok("GET", f"/{queue.id}")
    body = {"queue_name": "renamed", "settings": {"delivery_delay": 10, "message_retention_period": 1}}
    assert api.error(method, f"/{queue.id}", body)[:2] == (400, 100128)
    after = api.ok("GET", f"/{queue.id}")
    assert (after["queue_name"], after["settings"]) == (before["queue_name"], before["settings"])


@pytest.mark.parametrize("settings", [0, "", [], False, "x"])
def test_settings_that_are_not_an_object_are_refused(emulator: CloudflareQueuesEmulator, settings: object) -> None:
    queue = emulator.create_queue("orders")
    api = RawApi(emulator)
    assert api.error("POST", "", {"queue_name": "fresh", "settings": settings})[:2] == (400, 10207)
    assert api.error("PATCH", f"/{queue.id}", {"settings": settings})[:2] == (400, 10207)
    consumer_id = api.ok("GET", f"/{queue.id}/consumers")[0]["consumer_id"]
    consumer = {"type": "http_pull", "settings": settings}
    assert api.error("PUT", f"/{queue.id}/consumers/{consumer_id}", consumer)[:2] == (400, 10207)
    assert "fresh" not in [q["queue_name"] for q in api.ok("GET")]


def test_head_answers_carry_no_body(emulator: CloudflareQueuesEmulator) -> None:
    request = f"HEAD /client/v4/accounts/{emulator.account_id}/queues HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock:
        sock.sendall(request + request)  # two on one keep-alive connection: the second is read as such
        time.sleep(0.3)
        answer = sock.recv(65536)
    assert answer.count(b"HTTP/1.1 ") == 2 and answer.endswith(b"\r\n\r\n"), answer


@pytest.mark.parametrize("option", ["token", "read_only_token"])
def test_an_empty_token_is_refused_at_start(option: str) -> None:
    with pytest.raises(ValueError, match=f"{option} must not be empty"):
        CloudflareQueuesEmulator(**{option: "  "})


def test_the_poison_walk_through_of_the_docs() -> None:
    """docs/emulator.md: a queue with a dead-letter queue from the command line, a message failed twice."""
    spec = "orders:max_retries=1,dead_letter_queue=orders-dlq,retry_delay=0,visibility_timeout=60"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cfqueues.emulator", "--token", "t", "--quiet", "--queue", spec],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        _, queue_id = process.stdout.readline().split()
        api = f"{base}/accounts/023e105f4ecef8ad9ca31a8372d0c353/queues"
        session = requests.Session()
        session.headers["Authorization"] = "Bearer t"
        (consumer,) = session.get(f"{api}/{queue_id}/consumers", timeout=10).json()["result"]
        assert consumer["dead_letter_queue"] == "orders-dlq"
        assert consumer["settings"]["visibility_timeout_ms"] == 60_000 and consumer["settings"]["max_retries"] == 1
        session.post(f"{api}/{queue_id}/messages", json={"body": {"order": "bad"}}, timeout=10)
        for attempt in (1, 2):
            (message,) = session.post(f"{api}/{queue_id}/messages/pull", json={}, timeout=10).json()["result"][
                "messages"
            ]
            assert message["attempts"] == attempt
            session.post(
                f"{api}/{queue_id}/messages/ack", json={"retries": [{"lease_id": message["lease_id"]}]}, timeout=10
            )
        (dlq,) = session.get(api, params={"name": "orders-dlq"}, timeout=10).json()["result"]
        assert session.get(f"{api}/{dlq['queue_id']}/metrics", timeout=10).json()["result"]["backlog_count"] == 1
        assert session.get(f"{api}/{queue_id}/metrics", timeout=10).json()["result"]["backlog_count"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
