"""The server: keep-alive with one write per answer, the CLI, the Python API and the pytest fixture."""

from __future__ import annotations

import json
import signal
import socket
import socketserver
import subprocess
import sys
from typing import Any

import pytest
import requests

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, EmulatorProcess
from airflow_provider_cfqueues.emulator.app import Reply

from ..openapi_check import OpenAPIRecorder
from ..raw_api import RawApi


def test_each_answer_is_one_write_on_a_nodelay_socket(
    emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = emulator.create_queue("q")
    writes: list[int] = []
    original = socketserver._SocketWriter.write  # type: ignore[attr-defined]

    def counting_write(self: Any, data: bytes) -> int:
        writes.append(len(data))
        return int(original(self, data))

    monkeypatch.setattr(socketserver._SocketWriter, "write", counting_write)  # type: ignore[attr-defined]
    api = RawApi(emulator)
    for _ in range(5):
        api.push(queue.id, {"a": 1})
        api.pull(queue.id, batch_size=1)
    assert len(writes) == 10  # ten answers, ten writes, on one keep-alive connection
    server = emulator._server
    assert server is not None
    connections = list(server._connections)
    assert len(connections) == 1
    assert connections[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_http_1_0_and_connection_close(emulator: CloudflareQueuesEmulator) -> None:
    queue = emulator.create_queue("q")
    request = (
        f"GET /client/v4/accounts/{emulator.account_id}/queues/{queue.id}/metrics HTTP/1.0\r\n"
        f"Authorization: Bearer {emulator.token}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk  # the server closes the connection after an HTTP/1.0 answer
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
    assert json.loads(body)["result"]["backlog_count"] == 0


def test_chunked_request_body(emulator: CloudflareQueuesEmulator) -> None:
    queue = emulator.create_queue("q")

    def chunks():  # requests sends a generator body with Transfer-Encoding: chunked
        yield b'{"body": '
        yield b'{"chunked": true}}'

    response = requests.post(
        f"{emulator.base_url}/accounts/{emulator.account_id}/queues/{queue.id}/messages",
        data=chunks(),
        headers={"Authorization": f"Bearer {emulator.token}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert emulator.metrics("q")["backlog_count"] == 1


def test_openapi_recorder_reports_violations() -> None:
    """The validation that guards every emulator test must be able to fail."""
    recorder = OpenAPIRecorder("http://127.0.0.1:1")
    path = "/client/v4/accounts/" + "a" * 32 + "/queues/" + "b" * 32 + "/metrics"
    headers = {"authorization": "Bearer t"}
    recorder("GET", path, headers, b"", Reply(200, b'{"success":true,"result":{"backlog_count":"many"}}'))
    recorder(
        "GET",
        path,
        headers,
        b"",
        Reply(200, b'{"success":true,"result":{"backlog_count":1,"backlog_bytes":1,"oldest_message_timestamp_ms":0}}'),
    )
    assert len(recorder.violations) == 1 and "many" in recorder.violations[0]
    assert recorder.validated == [f"GET {path} -> 200"]


def start_cli(*arguments: str) -> subprocess.Popen[str]:
    """The emulator's command line with the token ``cli-token``; standard output and error piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cfqueues.emulator", "--token", "cli-token", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_prints_url_and_queues_and_stops_on_signals() -> None:
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        process = start_cli("--port", "0", "--queue", "alpha", "--queue", "beta")
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            lines = [process.stdout.readline().split() for _ in range(2)]
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/client/v4")
            assert [name for name, _ in lines] == ["alpha", "beta"]
            account = "023e105f4ecef8ad9ca31a8372d0c353"
            listed = requests.get(
                f"{base_url}/accounts/{account}/queues", headers={"Authorization": "Bearer cli-token"}, timeout=5
            ).json()
            assert {q["queue_name"]: q["queue_id"] for q in listed["result"]} == dict(lines)
            process.send_signal(stop_signal)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.mark.parametrize(
    ("specs", "says"),
    [
        (["q:max_retries=-1"], "--queue q:max_retries=-1: "),
        (["q:visibility_timeout=0"], "--queue q:visibility_timeout=0: "),
        (["q:batch_size=101"], "--queue q:batch_size=101: "),
        (["q:max_retries=2,max_retries=3"], "max_retries is given more than once"),
        (["q", "q"], "--queue q is given more than once"),
    ],
)
def test_cli_refuses_bad_queue_specs_in_one_line_before_serving(
    specs: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_cfqueues.emulator.__main__ import main

    argv = [arg for spec in specs for arg in ("--queue", spec)]
    assert main(["--quiet", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no base URL printed: nothing served
    assert len(err.strip().splitlines()) == 1 and says in err and "Traceback" not in err


def test_cli_queue_specs_do_not_depend_on_their_order() -> None:
    """``--queue a:dead_letter_queue=b --queue b:...``: b is the queue its own spec describes, not one the
    service made first for a's consumer (which crashed with "already exists")."""
    process = start_cli("--quiet", "--queue", "a:dead_letter_queue=b", "--queue", "b:max_retries=7")
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        ids = dict(process.stdout.readline().split() for _ in range(2))
        api = f"{base_url}/accounts/023e105f4ecef8ad9ca31a8372d0c353/queues"
        auth = {"Authorization": "Bearer cli-token"}
        consumers = {
            name: requests.get(f"{api}/{queue_id}/consumers", headers=auth, timeout=5).json()["result"][0]
            for name, queue_id in ids.items()
        }
        assert consumers["a"]["dead_letter_queue"] == "b"
        assert consumers["b"]["settings"]["max_retries"] == 7
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_cli_rejects_bad_fault_specs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cfqueues.emulator", "--fault", "nowhere:error=1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "unknown endpoint" in result.stderr


def test_cli_fault_flags_reach_the_server() -> None:
    with EmulatorProcess(["q"], extra_args=["--fault", "metrics:throttle=1,retry_after=7"]) as process:
        url = f"{process.base_url}/accounts/{process.account_id}/queues/{process.queue_ids['q']}/metrics"
        response = requests.get(url, headers={"Authorization": f"Bearer {process.token}"}, timeout=5)
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"


def test_python_api_exposes_state_and_connection(emulator: CloudflareQueuesEmulator) -> None:
    queue = emulator.create_queue("orders")
    conn = emulator.airflow_connection(queue="orders")
    assert conn == {
        "conn_type": "cloudflare_queues",
        "host": emulator.base_url,
        "password": emulator.token,
        "extra": {"account_id": emulator.account_id, "queue": "orders"},
    }
    uri = emulator.airflow_connection_uri()
    assert uri.startswith("cloudflare-queues://http://:") and f":{emulator.port}/client%2Fv4?" in uri
    assert emulator.queue("orders").queue_id == queue.id == emulator.queue(queue.id).queue_id
    with pytest.raises(KeyError):
        emulator.queue("missing")
    assert repr(emulator).startswith("CloudflareQueuesEmulator(base_url='http://127.0.0.1:")
    assert emulator.token not in repr(emulator)


def test_stop_closes_keep_alive_connections() -> None:
    emulator = CloudflareQueuesEmulator().start()
    queue = emulator.create_queue("q")
    api = RawApi(emulator)
    api.metrics(queue.id)
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        api.metrics(queue.id)


@pytest.mark.cfqueues(manual_clock=True, queues=["orders"], conn_id="my_queues")
def test_pytest_plugin_fixtures(cfqueues_emulator: CloudflareQueuesEmulator, cfqueues_connection: str) -> None:
    import os

    assert cfqueues_connection == "my_queues"
    conn = json.loads(os.environ["AIRFLOW_CONN_MY_QUEUES"])
    assert conn["host"] == cfqueues_emulator.base_url and conn["password"] == cfqueues_emulator.token
    assert cfqueues_emulator.metrics("orders")["backlog_count"] == 0
    before = cfqueues_emulator.clock.now()
    cfqueues_emulator.clock.advance(60)  # type: ignore[attr-defined]
    assert cfqueues_emulator.clock.now() == before + 60
