"""Error answers: authentication, ids, limits, schema, and the codes the service uses."""

from __future__ import annotations

import http.client
import json

import pytest
import requests

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator

from ..raw_api import RawApi

pytestmark = pytest.mark.airflow_agnostic  # the emulator alone: run in the Airflow 3 suite only


@pytest.fixture
def api(emulator: CloudflareQueuesEmulator) -> RawApi:
    return RawApi(emulator)


@pytest.fixture
def queue_id(emulator: CloudflareQueuesEmulator) -> str:
    return emulator.create_queue("q").id


def test_bearer_token_is_required(emulator: CloudflareQueuesEmulator, queue_id: str) -> None:
    url = f"{emulator.base_url}/accounts/{emulator.account_id}/queues/{queue_id}/metrics"
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 400 and missing.json()["errors"][0]["code"] == 9106
    for header in ("Bearer wrong-token", f"Basic {emulator.token}", emulator.token):
        wrong = requests.get(url, headers={"Authorization": header}, timeout=5)
        assert wrong.status_code == 403, header
        assert wrong.json() == {
            "success": False,
            "errors": [{"code": 10000, "message": "Authentication error"}],
            "messages": [],
            "result": None,
        }


def test_unknown_account_is_forbidden(emulator: CloudflareQueuesEmulator, queue_id: str) -> None:
    other = RawApi(emulator)
    other.base = other.base.replace(emulator.account_id, "f" * 32)
    assert other.error("GET", f"/{queue_id}")[:2] == (403, 10000)
    other.base = other.base.replace("f" * 32, "not-an-account")
    assert other.error("GET", f"/{queue_id}")[:2] == (400, 7003)


def test_unknown_queue(api: RawApi) -> None:
    assert api.error("GET", "/" + "a" * 32)[:2] == (404, 10104)
    assert api.error("POST", "/" + "a" * 32 + "/messages", {"body": {}})[:2] == (404, 10104)


@pytest.mark.parametrize("bad_id", ["short", "A" * 32, "g" * 32, "..", "%2F" + "a" * 29, "a" * 33, "a%3F" * 8])
def test_malformed_queue_ids_are_rejected(emulator: CloudflareQueuesEmulator, bad_id: str) -> None:
    # http.client sends the path exactly as written (requests would normalise "..")
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    connection.request(
        "GET",
        f"/client/v4/accounts/{emulator.account_id}/queues/{bad_id}/metrics",
        headers={"Authorization": f"Bearer {emulator.token}"},
    )
    response = connection.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["errors"][0]["code"] == 10107
    connection.close()


def test_unknown_routes(api: RawApi, queue_id: str) -> None:
    assert api.error("GET", f"/{queue_id}/messages/peak")[:2] == (404, 7003)
    assert api.error("GET", f"/{queue_id}/messages")[:2] == (405, 7001)
    assert api.error("GET", f"/{queue_id}/messages/peek")[:2] == (405, 7001)  # peek is a POST


def test_message_limits(api: RawApi, queue_id: str) -> None:
    # 128 KB per message including ~100 B of metadata: 127,900 bytes of body fit, one more does not
    api.push(queue_id, "x" * 127_900, content_type="text")
    status, code, message = api.error("POST", f"/{queue_id}/messages", {"body": "x" * 127_901, "content_type": "text"})
    assert (status, code) == (400, 10204) and "127901" in message
    # multi-byte characters count as bytes
    assert api.error("POST", f"/{queue_id}/messages", {"body": "é" * 64_000, "content_type": "text"})[1] == 10204


def test_batch_limits(api: RawApi, queue_id: str) -> None:
    assert api.error("POST", f"/{queue_id}/messages/batch", {"messages": [{"body": i} for i in range(101)]})[1] == 10206
    two_big = [{"body": "y" * 127_000, "content_type": "text"}] * 2 + [{"body": "z" * 2_000, "content_type": "text"}]
    assert api.error("POST", f"/{queue_id}/messages/batch", {"messages": two_big})[1] == 10205
    assert (
        api.error("POST", f"/{queue_id}/messages/batch", {"messages": [{"body": 1}], "delay_seconds": -1})[1] == 10202
    )
    assert api.metrics(queue_id)["backlog_count"] == 0  # a rejected batch enqueues nothing


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"body": "x", "content_type": "bytes"}, 10203),
        ({"body": "x", "content_type": "v8"}, 10203),
        ({"body": {}, "delay_seconds": 86_401}, 10203),
        ({"body": {}, "delay_seconds": -5}, 10203),
        ({"body": {}, "delay_seconds": "10"}, 10203),
        ({"content_type": "text"}, 10207),
        ({"body": "a string with the default json type"}, 10207),
        ({"body": {"a": 1}, "content_type": "text"}, 10207),
        ([{"body": 1}], 10207),
        ({"messages": [{"body": 1}]}, 10207),
    ],
)
def test_push_body_validation(api: RawApi, queue_id: str, body: object, code: int) -> None:
    status, actual, _ = api.error("POST", f"/{queue_id}/messages", body)
    assert (status, actual) == (400, code)


def test_invalid_json(api: RawApi, queue_id: str) -> None:
    for suffix in ("/messages", "/messages/batch", "/messages/pull", "/messages/ack"):
        assert api.error("POST", f"/{queue_id}{suffix}", raw=b'{"body": ')[:2] == (400, 10208), suffix
    assert api.error("POST", f"/{queue_id}/messages", raw=b"\xff\xfe")[1] == 10208
    assert api.error("POST", f"/{queue_id}/messages", raw=b'{"body": NaN}')[1] == 10208


def test_pull_requires_an_http_pull_consumer(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    bare = emulator.create_queue("bare", http_pull=False)
    status, _, message = api.error("POST", f"/{bare.id}/messages/pull", {})
    assert status == 405 and "http_pull" in message
    worker = emulator.create_queue("worker", http_pull=False)
    api.ok("POST", f"/{worker.id}/consumers", {"type": "worker", "script_name": "consumer"})
    assert api.error("POST", f"/{worker.id}/messages/pull", {})[0] == 405


@pytest.mark.parametrize(
    "body",
    [
        {"batch_size": 101},
        {"batch_size": 0},
        {"batch_size": 2.5},
        {"batch_size": "5"},
        {"visibility_timeout_ms": 43_200_001},
        {"visibility_timeout_ms": 0},
    ],
)
def test_pull_bounds(api: RawApi, queue_id: str, body: dict[str, object]) -> None:
    assert api.error("POST", f"/{queue_id}/messages/pull", body)[:2] == (400, 10207)


def test_pull_accepts_the_maximums(api: RawApi, queue_id: str) -> None:
    assert api.pull(queue_id, batch_size=100, visibility_timeout_ms=43_200_000)["messages"] == []
    status, payload = api.call("POST", f"/{queue_id}/messages/pull", raw=b"")
    assert status == 200 and payload["success"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"acks": [{"id": "x"}]}, 10207),
        ({"acks": "lease"}, 10207),
        ({"retries": [{"lease_id": "l", "delay_seconds": 100_000}]}, 10203),
    ],
)
def test_ack_body_validation(api: RawApi, queue_id: str, body: object, code: int) -> None:
    assert api.error("POST", f"/{queue_id}/messages/ack", body)[:2] == (400, code)


def test_invalid_consumer_and_queue_settings(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue_id = emulator.create_queue("no-consumer", http_pull=False).id
    assert (
        api.error("POST", f"/{queue_id}/consumers", {"type": "http_pull", "settings": {"batch_size": 500}})[1] == 100127
    )
    assert api.error("POST", f"/{queue_id}/consumers", {"type": "fancy"})[1] == 100127
    for bad in ("bad/name", "My_Queue", "-lead", "trail-", "a" * 64, "under_score"):
        status, code, message = api.error("POST", "", {"queue_name": bad})
        assert (status, code) == (400, 11003) and message == (
            f"invalid queue name: {bad}. Must match ^[a-z0-9]([a-z0-9-]{{0,61}}[a-z0-9])?$"
        )
    assert (
        api.error("POST", f"/{queue_id}/consumers", {"type": "http_pull", "dead_letter_queue": "Bad_DLQ"})[1] == 11003
    )
    assert api.error("PATCH", f"/{queue_id}", {"settings": {"message_retention_period": 10}})[1] == 100128


def test_error_envelope_shape(api: RawApi) -> None:
    status, payload = api.call("GET", "/" + "b" * 32)
    assert status == 404
    assert set(payload) == {"success", "errors", "messages", "result"}
    assert json.dumps(payload["errors"][0], sort_keys=True).startswith('{"code": 10104')
