"""The hook against the emulator over HTTP: operations, request counts, names, validation, secrets."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest

from airflow_provider_cfqueues.api.errors import (
    CloudflareQueuesAuthError,
    CloudflareQueuesConfigError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesPullNotEnabledError,
    CloudflareQueuesValidationError,
)
from airflow_provider_cfqueues.api.models import OutgoingMessage
from airflow_provider_cfqueues.api.push_packing import batch_capacity, min_batches, prepare_messages
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import FAST_RETRY, point_connection


def test_round_trip_with_every_content_type(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook, clock: ManualClock
) -> None:
    queue = emulator.create_queue("orders")
    single = hook.push_message({"order": 1}, queue="orders")
    assert single.messages == 1 and single.queue_id == queue.id and single.metrics is not None
    result = hook.push_messages(
        [
            "plain ✓",
            [1, 2],
            3.5,
            None,
            {"body": "a dict with a body key"},
            OutgoingMessage(body="later", delay_seconds=60),
        ],
        queue=queue.id,
    )
    assert (result.messages, result.requests) == (6, 1)
    emulator.inject_message("orders", b"\x00\x01raw")

    pulled = hook.pull_messages(queue="orders", batch_size=100, visibility_timeout=timedelta(minutes=5))
    bodies = {json.dumps(m.body) if not isinstance(m.body, bytes) else repr(m.body): m for m in pulled.messages}
    assert set(bodies) == {
        '{"order": 1}',
        '"plain \\u2713"',
        "[1, 2]",
        "3.5",
        "null",
        '{"body": "a dict with a body key"}',
        "b'\\x00\\x01raw'",
    }
    assert pulled.backlog_count == 8  # the delayed message counts, it is just not deliverable yet
    message = bodies['"plain \\u2713"']
    assert message.content_type == "text" and message.attempts == 1
    assert message.published_at.timestamp() == pytest.approx(clock.now(), abs=0.001)

    acked = hook.ack_messages(queue="orders", acks=pulled.messages[:4], retries=[(m, 30) for m in pulled.messages[4:]])
    assert (acked.ack_count, acked.retry_count, acked.warnings, acked.requests) == (4, 3, {}, 1)
    assert hook.get_metrics("orders").backlog_count == 4
    consumers = hook.list_consumers("orders")
    assert [c.type for c in consumers] == ["http_pull"] and consumers[0].settings.visibility_timeout_ms == 30_000
    assert hook.get_queue("orders").queue_id == queue.id
    clock.advance(60)
    assert len(hook.pull_messages(queue="orders", batch_size=100).messages) == 4


def test_push_uses_the_fewest_requests(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    emulator.create_queue("q")
    rng = random.Random(5)
    bodies = [{"n": n, "pad": "x" * int(rng.lognormvariate(7.3, 1.0))} for n in range(1_000)]
    bodies = [b if len(b["pad"]) < 100_000 else {"n": b["n"]} for b in bodies]
    result = hook.push_messages(bodies, queue="q")
    prepared = prepare_messages(bodies)
    floor = min_batches([len(m.wire) + 1 for m in prepared], batch_capacity(None))
    assert result.messages == 1_000 and result.requests == floor == emulator.app.requests["push_batch"]
    assert emulator.metrics("q")["backlog_count"] == 1_000
    assert emulator.metrics("q")["backlog_bytes"] == sum(m.body_bytes for m in prepared)
    # what the hook sent was valid by the OpenAPI description
    assert any(label.startswith("POST") and "/messages/batch" in label for label in emulator.openapi.validated)


def test_pushing_nothing_sends_nothing(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    result = hook.push_messages([], queue="q")
    assert (result.messages, result.requests) == (0, 0)
    assert sum(emulator.app.requests.values()) == 0


def test_ack_chunks_and_warnings(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    emulator.create_queue("q")
    hook.push_messages(list(range(250)), queue="q")
    leases = [m for _ in range(3) for m in hook.pull_messages(queue="q", batch_size=100).messages]
    result = hook.ack_messages(queue="q", acks=leases[:200], retries=[leases[200].lease_id, leases[0].lease_id])
    assert result.requests == 3 and emulator.app.requests["ack"] == 3
    assert (result.ack_count, result.retry_count) == (200, 1)
    assert list(result.warnings) == [leases[0].lease_id]  # retry after ack: reported, not counted


def test_names_are_resolved_once_and_cached(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("orders")
    first = CloudflareQueuesHook(connection, queue="orders")
    first.push_message("a")
    first.push_message("b")
    CloudflareQueuesHook(connection).get_metrics("orders")  # another hook, same process
    assert emulator.app.requests["list_queues"] == 1


def test_renamed_queue_is_looked_up_again(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    old = emulator.create_queue("jobs")
    hook.push_message("to the old queue", queue="jobs")
    emulator.state.delete_queue(emulator.account_id, old.id)
    new = emulator.create_queue("jobs")
    result = hook.push_message("to the new queue", queue="jobs")
    assert result.queue_id == new.id != old.id
    assert emulator.metrics("jobs")["backlog_count"] == 1


def test_default_queue_from_the_connection(emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.create_queue("defaulted")
    point_connection(monkeypatch, emulator, "cfq_with_queue", queue="defaulted")
    hook = CloudflareQueuesHook("cfq_with_queue")
    hook.push_message({"x": 1})
    assert emulator.metrics("defaulted")["backlog_count"] == 1
    bare = CloudflareQueuesHook("cloudflare_queues_default")
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_QUEUES_DEFAULT", json.dumps(emulator.airflow_connection()))
    with pytest.raises(CloudflareQueuesConfigError, match="no queue given"):
        bare.get_metrics()


def test_list_queues_reads_every_page(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    for i in range(130):
        emulator.create_queue(f"q{i:03d}", http_pull=False)
    names = [q.queue_name for q in hook.list_queues()]
    assert names == [f"q{i:03d}" for i in range(130)]
    assert emulator.app.requests["list_queues"] == 2
    assert hook.resolve_queue_id("q129") == emulator.queue("q129").queue_id
    assert emulator.app.requests["list_queues"] == 2  # list_queues filled the name cache


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda h: h.push_messages(["ok", b"bytes"], queue="q"), "message 1: bytes"),
        (lambda h: h.push_message("x" * 128_000, queue="q"), "at most 127,900"),
        (lambda h: h.push_message({"a": 1}, queue="q", delay_seconds=90_000), "from 0 to 86400"),
        (lambda h: h.push_messages([1], queue="q", delay_seconds=-1), "delay_seconds"),
        (lambda h: h.push_message("x", queue="../admin"), "queue must be"),
        (lambda h: h.push_message("x", queue="q%2F..%2F"), "queue must be"),
        (lambda h: h.pull_messages(queue="q", batch_size=101), "batch_size"),
        (lambda h: h.pull_messages(queue="q", visibility_timeout=timedelta(hours=13)), "visibility_timeout"),
        (lambda h: h.ack_messages(queue="q", acks=[None]), "acks"),
        (lambda h: h.ack_messages(queue="q", retries=[("lease", 100_000)]), "delay_seconds"),
    ],
)
def test_invalid_input_sends_no_request(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook, call: object, match: str
) -> None:
    emulator.create_queue("q")
    with pytest.raises(CloudflareQueuesValidationError, match=match):
        call(hook)  # type: ignore[operator]
    assert sum(emulator.app.requests.values()) == 0


def test_permanent_errors_fail_at_once(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook, sleeps: list[float]
) -> None:
    bare = emulator.create_queue("bare", http_pull=False)
    with pytest.raises(CloudflareQueuesPullNotEnabledError, match="npx wrangler queues consumer http add"):
        hook.pull_messages(queue=bare.id)
    with pytest.raises(CloudflareQueuesNotFoundError, match="10104"):
        hook.get_metrics("f" * 32)
    with pytest.raises(CloudflareQueuesNotFoundError, match=r"no queue named 'missing'.*wrangler queues create"):
        hook.get_metrics("missing")
    assert (emulator.app.requests["pull"], emulator.app.requests["metrics"]) == (1, 1)
    assert sleeps == []


def test_wrong_token_fails_at_once_and_stays_secret(
    emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    queue = emulator.create_queue("q")
    secret = "wrong-token-3f9a8c7e-do-not-print"
    conn = {**emulator.airflow_connection(), "password": secret}
    monkeypatch.setenv("AIRFLOW_CONN_CFQ_WRONG", json.dumps(conn))
    hook = CloudflareQueuesHook("cfq_wrong", retry_policy=FAST_RETRY)
    with pytest.raises(CloudflareQueuesAuthError) as info:
        hook.push_message("x", queue=queue.id)
    assert "Queues Edit" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert secret not in repr(hook) and secret not in repr(hook.settings)
    assert secret not in caplog.text
    ok, message = hook.test_connection()
    assert not ok and "refused" in message and secret not in message


def test_test_connection(emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.create_queue("pullable")
    emulator.create_queue("push-only", http_pull=False)

    def check(queue: str | None, **changes: object) -> tuple[bool, str]:
        conn = emulator.airflow_connection(queue=queue)
        conn["extra"].update(changes.pop("extra", {}))  # type: ignore[attr-defined]
        conn.update(changes)
        monkeypatch.setenv("AIRFLOW_CONN_CFQ_CHECK", json.dumps(conn))
        return CloudflareQueuesHook("cfq_check").test_connection()

    ok, message = check("pullable")
    assert ok and "has an HTTP pull consumer" in message
    ok, message = check(None)
    assert ok and "2 queue(s)" in message
    ok, message = check("push-only")
    assert not ok and "npx wrangler queues consumer http add push-only" in message
    ok, message = check("nope")
    assert not ok and "no queue named 'nope'" in message
    ok, message = check("pullable", extra={"account_id": "f" * 32})
    assert not ok and "refused for account ffff" in message
    ok, message = check("pullable", extra={"account_id": ""})
    assert not ok and "'account_id' extra" in message


def test_connection_uri_form(emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.create_queue("uri-q")
    monkeypatch.setenv("AIRFLOW_CONN_CFQ_URI", emulator.airflow_connection_uri(queue="uri-q"))
    hook = CloudflareQueuesHook("cfq_uri")
    assert hook.settings.base_url == emulator.base_url
    assert hook.test_connection()[0]


def test_a_host_without_http_for_the_emulator_says_so_at_once(
    emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError

    emulator.create_queue("q")
    connection = emulator.airflow_connection()
    connection["host"] = connection["host"].removeprefix("http://")  # taken as https
    monkeypatch.setenv("AIRFLOW_CONN_NO_SCHEME", json.dumps(connection))
    hook = CloudflareQueuesHook("no_scheme", retry_policy=FAST_RETRY)
    fix = f"speaks plain http. Set the connection's host to http://127.0.0.1:{emulator.port}/client/v4"
    with pytest.raises(CloudflareQueuesConfigError, match=fix.replace(".", r"\.")):
        hook.get_metrics("q")
    with pytest.raises(CloudflareQueuesConfigError, match="speaks plain http"):
        asyncio.run(hook.aget_metrics("q"))
    assert emulator.connections_accepted == 2  # one handshake each: not retried
