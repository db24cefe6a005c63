"""The official Cloudflare SDK (``cloudflare`` on PyPI) works against the emulator with ``base_url``."""

from __future__ import annotations

import base64
import json

import cloudflare
import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock

pytestmark = pytest.mark.airflow_agnostic  # the emulator alone: run in the Airflow 3 suite only


@pytest.fixture
def sdk(emulator: CloudflareQueuesEmulator) -> cloudflare.Cloudflare:
    return cloudflare.Cloudflare(api_token=emulator.token, base_url=emulator.base_url, max_retries=0)


def test_sdk_round_trip(emulator: CloudflareQueuesEmulator, sdk: cloudflare.Cloudflare, clock: ManualClock) -> None:
    account = emulator.account_id
    queue = sdk.queues.create(account_id=account, queue_name="sdk-queue")
    assert queue is not None and queue.queue_name == "sdk-queue" and queue.queue_id
    consumer = sdk.queues.consumers.create(
        queue.queue_id,
        account_id=account,
        type="http_pull",
        settings={"batch_size": 10, "max_retries": 3, "visibility_timeout_ms": 5000},
    )
    assert consumer is not None and consumer.type == "http_pull"

    pushed = sdk.queues.messages.push(queue.queue_id, account_id=account, body="hello", content_type="text")
    assert pushed is not None and pushed.metadata.metrics.backlog_count == 1
    bulk = sdk.queues.messages.bulk_push(
        queue.queue_id,
        account_id=account,
        messages=[{"body": {"n": i}, "content_type": "json"} for i in range(3)],
        delay_seconds=0,
    )
    assert bulk is not None and bulk.metadata.metrics.backlog_count == 4

    pulled = sdk.queues.messages.pull(queue.queue_id, account_id=account, batch_size=10, visibility_timeout_ms=5000)
    assert pulled is not None and pulled.message_backlog_count == 4 and len(pulled.messages) == 4
    bodies = []
    for message in pulled.messages:
        assert message.attempts == 1 and message.lease_id and message.id and message.timestamp_ms
        if message.metadata["CF-Content-Type"] == "text":
            bodies.append(message.body)
        else:
            bodies.append(json.loads(base64.b64decode(message.body)))
    assert sorted(map(json.dumps, bodies)) == sorted(map(json.dumps, ["hello", {"n": 0}, {"n": 1}, {"n": 2}]))

    leases = [m.lease_id for m in pulled.messages]
    acked = sdk.queues.messages.ack(
        queue.queue_id,
        account_id=account,
        acks=[{"lease_id": lease} for lease in leases[:3]],
        retries=[{"lease_id": leases[3], "delay_seconds": 5}],
    )
    assert acked is not None and acked.ack_count == 3 and acked.retry_count == 1 and acked.warnings == {}

    fetched = sdk.queues.get(queue.queue_id, account_id=account)
    assert fetched is not None and fetched.consumers and fetched.consumers[0].type == "http_pull"
    listed = sdk.queues.list(account_id=account)
    assert [q.queue_name for q in listed.result] == ["sdk-queue"]
    metrics = sdk.queues.get_metrics(queue.queue_id, account_id=account)
    assert metrics is not None and metrics.backlog_count == 1  # the retried message waits 5 s

    clock.advance(5)
    again = sdk.queues.messages.pull(queue.queue_id, account_id=account)
    assert again is not None and [m.attempts for m in again.messages] == [2]


def test_sdk_sees_cloudflare_errors(emulator: CloudflareQueuesEmulator) -> None:
    wrong = cloudflare.Cloudflare(api_token="wrong", base_url=emulator.base_url, max_retries=0)
    with pytest.raises(cloudflare.PermissionDeniedError):
        wrong.queues.list(account_id=emulator.account_id)
    sdk = cloudflare.Cloudflare(api_token=emulator.token, base_url=emulator.base_url, max_retries=0)
    with pytest.raises(cloudflare.NotFoundError) as info:
        sdk.queues.get("0" * 32, account_id=emulator.account_id)
    assert "10104" in str(info.value)
    bare = emulator.create_queue("bare", http_pull=False)
    with pytest.raises(cloudflare.APIStatusError) as pull_error:
        sdk.queues.messages.pull(bare.id, account_id=emulator.account_id)
    assert pull_error.value.status_code == 405
