"""
The bad-input catalogue: each bad input across the hook, the operators, the sensor and the connection
gets a specific, actionable error, and sends no request — or exactly the requests stated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_cfqueues.api.callables import resolve_callable
from airflow_provider_cfqueues.api.errors import (
    CloudflareQueuesAuthError,
    CloudflareQueuesConfigError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesPullNotEnabledError,
    CloudflareQueuesRateLimitError,
    CloudflareQueuesResponseError,
    CloudflareQueuesServerError,
    CloudflareQueuesTransportError,
    CloudflareQueuesValidationError,
)
from airflow_provider_cfqueues.api.retry import RetryPolicy
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.emulator.app import Reply
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
from airflow_provider_cfqueues.operators.queues import (
    CloudflareQueuesAckOperator,
    CloudflareQueuesPullAndAckOperator,
    CloudflareQueuesPullOperator,
    CloudflareQueuesPushOperator,
)
from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor

V = CloudflareQueuesValidationError


@dataclass
class Case:
    layer: str
    name: str
    action: Callable[[CloudflareQueuesHook, CloudflareQueuesEmulator], Any]
    error: type[Exception]
    match: str
    requests: int = 0  # requests that reach the emulator (after authentication)
    setup: Callable[[CloudflareQueuesEmulator], None] | None = None


def hook_with(emulator: CloudflareQueuesEmulator, **changes: Any) -> CloudflareQueuesHook:
    conn = emulator.airflow_connection()
    conn["extra"].update(changes.pop("extra", {}))
    conn.update(changes)
    import os

    os.environ["AIRFLOW_CONN_CFQ_CASE"] = json.dumps(conn)
    queue_id = emulator.queue("q").queue_id
    return CloudflareQueuesHook("cfq_case", queue=queue_id, retry_policy=RetryPolicy(max_attempts=3, initial_backoff=0))


def wrong_shape(emulator: CloudflareQueuesEmulator) -> None:
    emulator.app.observers.remove(emulator.openapi)  # type: ignore[attr-defined]  # invalid on purpose
    original = emulator.app._handle

    def handle(method: str, target: str, headers: Any, body: bytes) -> Reply:
        reply = original(method, target, headers, body)
        if target.endswith("/metrics"):
            return Reply(200, b'{"success": true, "result": {"backlog_count": "lots"}}')
        return reply

    emulator.app._handle = handle  # type: ignore[method-assign]


CASES = [
    # the hook: messages
    Case("hook", "message over 128 KB", lambda h, e: h.push_message("x" * 127_901), V, "at most 127,900"),
    Case("hook", "multi-byte message over 128 KB", lambda h, e: h.push_message("é" * 64_000), V, "128,000 bytes"),
    Case(
        "hook",
        "batch with one message over 128 KB",
        lambda h, e: h.push_messages(["ok", "x" * 200_000]),
        V,
        "message 1: the body is 200,000 bytes",
    ),
    Case(
        "hook",
        "datetime in a body",
        lambda h, e: h.push_message({"at": datetime(2026, 1, 1)}),
        V,
        "not JSON-serialisable",
    ),
    Case("hook", "set body", lambda h, e: h.push_messages([{1, 2}]), V, "not JSON-serialisable"),
    Case("hook", "NaN body", lambda h, e: h.push_message(float("nan")), V, "not JSON-serialisable"),
    Case("hook", "bytes body", lambda h, e: h.push_message(b"\x00\x01"), V, "bytes bodies cannot be pushed"),
    Case("hook", "str body as json", lambda h, e: h.push_message("s", content_type="json"), V, "refuses a str body"),
    Case(
        "hook", "dict body as text", lambda h, e: h.push_message({"a": 1}, content_type="text"), V, "needs a str body"
    ),
    Case(
        "hook",
        "unknown content type",
        lambda h, e: h.push_message("s", content_type="bytes"),
        V,
        "must be 'text' or 'json'",
    ),
    Case("hook", "negative delay", lambda h, e: h.push_message("s", delay_seconds=-1), V, "from 0 to 86400"),
    Case("hook", "delay over 24 h", lambda h, e: h.push_messages(["s"], delay_seconds=86_401), V, "from 0 to 86400"),
    Case("hook", "delay not a number", lambda h, e: h.push_message("s", delay_seconds="ten"), V, "from 0 to 86400"),
    Case("hook", "visibility in ms", lambda h, e: h.pull_messages(visibility_timeout=600_000), V, "(12 hours)"),
    Case("hook", "batch_size 0", lambda h, e: h.pull_messages(batch_size=0), V, "batch_size"),
    Case("hook", "batch_size 101", lambda h, e: h.pull_messages(batch_size=101), V, "from 1 to 100"),
    Case("hook", "visibility timeout 0", lambda h, e: h.pull_messages(visibility_timeout=0), V, "(1 ms)"),
    Case(
        "hook",
        "visibility timeout over 12 h",
        lambda h, e: h.pull_messages(visibility_timeout=timedelta(hours=12, seconds=1)),
        V,
        "12 hours",
    ),
    Case("hook", "queue with /", lambda h, e: h.get_metrics("a/b"), V, "queue must be a queue id"),
    Case("hook", "queue ..", lambda h, e: h.get_metrics(".."), V, "queue must be a queue id"),
    Case("hook", "queue with ?", lambda h, e: h.get_metrics("q?admin=1"), V, "queue must be a queue id"),
    Case("hook", "queue with %2F", lambda h, e: h.get_metrics("q%2F..%2Fx"), V, "queue must be a queue id"),
    Case("hook", "empty lease id", lambda h, e: h.ack_messages(acks=[""]), V, r"acks\[0\]"),
    Case("hook", "negative retry delay", lambda h, e: h.ack_messages(retries=[("lease", -1)]), V, "delay_seconds"),
    # the connection
    Case(
        "connection",
        "empty token",
        lambda h, e: hook_with(e, password="").get_metrics(),
        CloudflareQueuesConfigError,
        "no API token",
    ),
    Case(
        "connection",
        "no account id",
        lambda h, e: hook_with(e, extra={"account_id": ""}).get_metrics(),
        CloudflareQueuesConfigError,
        "'account_id' extra",
    ),
    Case(
        "connection",
        "account id with /",
        lambda h, e: hook_with(e, extra={"account_id": "a/../b"}).get_metrics(),
        CloudflareQueuesConfigError,
        "account_id must be 32 hexadecimal",
    ),
    Case(
        "connection",
        "base URL that is not http(s)",
        lambda h, e: hook_with(e, host="ftp://files").get_metrics(),
        CloudflareQueuesConfigError,
        "must be an http",
    ),
    Case(
        "connection",
        "wrong token",
        lambda h, e: hook_with(e, password="nope").get_metrics(),
        CloudflareQueuesAuthError,
        "Queues Edit",
    ),  # refused before it counts: 0
    Case(
        "connection",
        "unknown queue name",
        lambda h, e: h.get_metrics("nowhere"),
        CloudflareQueuesNotFoundError,
        "wrangler queues create nowhere",
        requests=2,  # the name lookup, then the whole list for close names
    ),
    Case(
        "connection",
        "unknown queue id",
        lambda h, e: h.get_metrics("a" * 32),
        CloudflareQueuesNotFoundError,
        "10104",
        requests=1,
    ),
    Case(
        "connection",
        "queue without pull consumer",
        lambda h, e: h.pull_messages(queue="push-only"),
        CloudflareQueuesPullNotEnabledError,
        "npx wrangler queues consumer http add",
        requests=2,
    ),
    # malformed API answers: retried as stated, then a specific error; nothing else changes
    Case(
        "answers",
        "HTML page from a proxy",
        lambda h, e: h.get_metrics(),
        CloudflareQueuesServerError,
        "HTML page instead of a JSON answer",
        requests=3,
        setup=lambda e: e.faults.set("metrics", html=1.0),
    ),
    Case(
        "answers",
        "cut-off JSON",
        lambda h, e: h.get_queue(),
        CloudflareQueuesTransportError,
        "not valid JSON",
        requests=3,
        setup=lambda e: e.faults.set("get_queue", truncated=1.0),
    ),
    Case(
        "answers",
        "JSON of the wrong shape",
        lambda h, e: h.get_metrics(),
        CloudflareQueuesResponseError,
        "does not match the API",
        requests=1,
        setup=wrong_shape,
    ),
    Case(
        "answers",
        "429 longer than we wait",
        lambda h, e: h.get_metrics(),
        CloudflareQueuesRateLimitError,
        "HTTP 429",
        requests=1,
        setup=lambda e: e.faults.set("metrics", throttle=1.0, retry_after=600),
    ),
    Case(
        "answers",
        "connection refused",
        lambda h, e: hook_with(e, host="http://127.0.0.1:9").get_metrics(),
        CloudflareQueuesTransportError,
        "ConnectionError talking to http://127.0.0.1:9",
    ),
    # operators and sensor: refused when the DAG is parsed, or before any request
    Case(
        "operator",
        "PullAndAck process_mode",
        lambda h, e: CloudflareQueuesPullAndAckOperator(task_id="t", process=print, process_mode="stream"),
        V,
        "process_mode",
    ),
    Case(
        "operator",
        "PullAndAck without process",
        lambda h, e: CloudflareQueuesPullAndAckOperator(task_id="t", process=None),  # type: ignore[arg-type]
        V,
        "process is needed",
    ),
    Case(
        "operator",
        "Push to a queue that rendered empty",
        lambda h, e: CloudflareQueuesPushOperator(task_id="t", cloudflare_queue="", messages=[1]).execute({}),
        V,
        "cloudflare_queue is ''",
    ),
    Case(
        "operator",
        "PullAndAck concurrency 0",
        lambda h, e: CloudflareQueuesPullAndAckOperator(task_id="t", process=print, concurrency=0),
        V,
        "concurrency",
    ),
    Case(
        "operator",
        "PullAndAck max_attempts without a poison route",
        lambda h, e: CloudflareQueuesPullAndAckOperator(task_id="t", process=print, max_attempts=3),
        V,
        "max_attempts needs on_poison",
    ),
    Case(
        "operator",
        "PullAndAck max_consecutive_failures 0",
        lambda h, e: CloudflareQueuesPullAndAckOperator(task_id="t", process=print, max_consecutive_failures=0),
        V,
        "max_consecutive_failures",
    ),
    Case(
        "operator",
        "PullAndAck retry_delay unknown word",
        lambda h, e: CloudflareQueuesPullAndAckOperator(task_id="t", process=print, message_retry_delay="soon"),
        V,
        "retry_delay",
    ),
    Case(
        "operator",
        "PullAndAck visibility over 12 h",
        lambda h, e: CloudflareQueuesPullAndAckOperator(
            task_id="t", process=print, visibility_timeout=timedelta(hours=13)
        ),
        V,
        "visibility_timeout",
    ),
    Case(
        "operator",
        "PullAndAck retry_delay over 24 h",
        lambda h, e: CloudflareQueuesPullAndAckOperator(task_id="t", process=print, message_retry_delay=100_000),
        V,
        "retry_delay",
    ),
    Case(
        "operator",
        "process not importable",
        lambda h, e: resolve_callable("no.such.module.fn", "process"),
        V,
        "cannot import 'no.such.module.fn'",
    ),
    Case(
        "operator",
        "Push delay not a number",
        lambda h, e: CloudflareQueuesPushOperator(
            task_id="t", cloudflare_queue="q", messages=[1], delay_seconds="soon"
        ).execute({}),
        V,
        "delay_seconds",
    ),
    Case(
        "operator",
        "Push bytes message",
        lambda h, e: CloudflareQueuesPushOperator(task_id="t", cloudflare_queue="q", messages=[b"raw"]).execute({}),
        V,
        "bytes bodies",
    ),
    Case(
        "operator",
        "Pull batch_size 0",
        lambda h, e: CloudflareQueuesPullOperator(task_id="t", batch_size=0),
        V,
        "batch_size",
    ),
    Case(
        "operator",
        "Ack negative retry_delay",
        lambda h, e: CloudflareQueuesAckOperator(task_id="t", message_retry_delay=-5),
        V,
        "retry_delay",
    ),
    Case(
        "sensor",
        "no threshold",
        lambda h, e: CloudflareQueuesBacklogSensor(task_id="t", cloudflare_queue="q"),
        V,
        "at least one threshold",
    ),
    Case(
        "sensor",
        "min above max",
        lambda h, e: CloudflareQueuesBacklogSensor(task_id="t", cloudflare_queue="q", min_backlog=10, max_backlog=1),
        V,
        "never met",
    ),
    Case(
        "sensor",
        "threshold not a number",
        lambda h, e: CloudflareQueuesBacklogSensor(task_id="t", cloudflare_queue="q", min_backlog=-3),
        V,
        "whole number",
    ),
]


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert {case.layer for case in CASES} == {"hook", "connection", "answers", "operator", "sensor"}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.layer}: {c.name}" for c in CASES])
def test_bad_input(
    case: Case, emulator: CloudflareQueuesEmulator, connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CFQ_CASE", "{}")  # restored after the test
    emulator.create_queue("q")
    emulator.create_queue("push-only", http_pull=False)
    queue_id = emulator.queue("q").queue_id  # by id: no name lookup in the request counts
    hook = CloudflareQueuesHook(connection, queue=queue_id, retry_policy=RetryPolicy(max_attempts=3, initial_backoff=0))
    if case.setup is not None:
        case.setup(emulator)
    with pytest.raises(case.error, match=case.match) as info:
        case.action(hook, emulator)
    assert sum(emulator.app.requests.values()) == case.requests
    assert emulator.token not in str(info.value)
    assert emulator.metrics("q") == {"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0}
