"""
The sans-IO flows driven by a script of answers: no sockets, no emulator, no clock. Each test scripts
what the service answers (or that the connection failed) and checks what the flow sent, how long it
waited and what it returned or raised. The same flows run over HTTP in tests/hook/.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_cfqueues.api import admin_flows, flows
from airflow_provider_cfqueues.api.admin_requests import queue_settings
from airflow_provider_cfqueues.api.errors import (
    CloudflareQueuesAuthError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesPushError,
    CloudflareQueuesRateLimitError,
    CloudflareQueuesServerError,
    CloudflareQueuesTransportError,
)
from airflow_provider_cfqueues.api.flows import FlowContext, QueueNameCache
from airflow_provider_cfqueues.api.operations import ApiRequest, RawResponse
from airflow_provider_cfqueues.api.retry import RetryPolicy

ACCOUNT = "0123456789abcdef0123456789abcdef"
QUEUE_ID = "a" * 32
OTHER_ID = "b" * 32
Answer = RawResponse | BaseException | Callable[[ApiRequest], RawResponse]


def ok(result: Any, **extra: Any) -> RawResponse:
    envelope = {"success": True, "errors": [], "messages": [], "result": result, **extra}
    return RawResponse(200, json.dumps(envelope).encode(), {"content-type": "application/json"})


def error(status: int, code: int, message: str, **headers: str) -> RawResponse:
    envelope = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return RawResponse(status, json.dumps(envelope).encode(), {"content-type": "application/json", **headers})


def queue(name: str, queue_id: str = QUEUE_ID) -> dict[str, Any]:
    return {"queue_id": queue_id, "queue_name": name, "consumers": [], "settings": {}}


METRICS = {"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0}
LOST = CloudflareQueuesTransportError("connection reset", operation="scripted")  # outcome unknown


class Script:
    """Answers requests in order; records what was sent and every wait."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.sent: list[ApiRequest] = []
        self.slept: list[float] = []

    def send(self, request: ApiRequest) -> RawResponse:
        self.sent.append(request)
        assert self.answers, f"unexpected request {request.method} {request.path}"
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer(request) if callable(answer) else answer

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def run(self, flow: flows.Flow[Any]) -> Any:
        result = flows.run(flow, self.send, self.sleep)
        assert not self.answers, f"{len(self.answers)} scripted answer(s) left over"
        return result

    @property
    def operations(self) -> list[str]:
        return [request.operation for request in self.sent]


@pytest.fixture
def ctx() -> FlowContext:
    """A private name cache, a seeded retry policy, and a clock that never moves."""
    return FlowContext(
        account_id=ACCOUNT,
        scope="https://scripted.invalid/client/v4",
        names=QueueNameCache(),
        retry=RetryPolicy(initial_backoff=1, max_backoff=8, max_attempts=4, rng=random.Random(7)),
        monotonic=lambda: 0.0,
    )


def test_transient_failures_are_retried_with_backoff(ctx: FlowContext) -> None:
    script = Script(error(503, 15000, "internal"), LOST, ok(METRICS))
    assert script.run(flows.get_metrics(ctx, queue=QUEUE_ID)).backlog_count == 0
    assert script.operations == ["metrics"] * 3
    assert len(script.slept) == 2 and 0 <= script.slept[0] <= 1 and 0 <= script.slept[1] <= 2  # full jitter


def test_retries_stop_at_max_attempts_and_say_how_many(ctx: FlowContext) -> None:
    script = Script(*[error(500, 15000, "internal")] * 4)
    with pytest.raises(CloudflareQueuesServerError, match="after 4 attempts"):
        script.run(flows.get_metrics(ctx, queue=QUEUE_ID))
    assert len(script.sent) == 4


def test_retry_after_is_honoured_and_auth_errors_are_not_retried(ctx: FlowContext) -> None:
    script = Script(error(429, 971, "slow down", **{"Retry-After": "7"}), ok(METRICS))
    script.run(flows.get_metrics(ctx, queue=QUEUE_ID))
    assert script.slept[0] >= 7
    script = Script(error(403, 10000, "Authentication error"))
    with pytest.raises(CloudflareQueuesAuthError, match="Queues Edit permission"):
        script.run(flows.get_metrics(ctx, queue=QUEUE_ID))
    assert script.slept == []


def test_a_retry_after_past_max_retry_wait_raises_at_once(ctx: FlowContext) -> None:
    script = Script(error(429, 971, "blocked", **{"Retry-After": "900"}))
    with pytest.raises(CloudflareQueuesRateLimitError):
        script.run(flows.get_metrics(ctx, queue=QUEUE_ID))
    assert script.slept == []


def test_a_name_is_resolved_once_then_cached(ctx: FlowContext) -> None:
    def listing(request: ApiRequest) -> RawResponse:
        assert ("name", "orders") in request.params  # the service filters by name
        return ok([queue("orders")], result_info={"page": 1, "per_page": 100, "count": 1})

    script = Script(listing, ok(METRICS))
    script.run(flows.get_metrics(ctx, queue="orders"))
    script.answers.append(ok(METRICS))
    script.run(flows.get_metrics(ctx, queue="orders"))  # no second lookup
    assert script.operations == ["list_queues", "metrics", "metrics"]
    assert script.sent[1].path.endswith(f"/queues/{QUEUE_ID}/metrics")


def test_a_stale_cached_name_is_looked_up_again_once(ctx: FlowContext) -> None:
    ctx.names.put(ctx.scope, ACCOUNT, "orders", QUEUE_ID)  # deleted and re-created since
    script = Script(
        error(404, 10104, "QueueNotFound"),
        ok([queue("orders", OTHER_ID)], result_info={"page": 1, "count": 1}),
        ok(METRICS),
    )
    script.run(flows.get_metrics(ctx, queue="orders"))
    assert script.operations == ["metrics", "list_queues", "metrics"]
    assert OTHER_ID in script.sent[2].path and ctx.names.get(ctx.scope, ACCOUNT, "orders") == OTHER_ID


def test_an_unknown_name_suggests_the_close_ones(ctx: FlowContext) -> None:
    names = [queue("orders"), queue("orders-dlq", OTHER_ID), queue("events", "c" * 32)]
    script = Script(ok([], result_info={"page": 1, "count": 0}), ok(names, result_info={"page": 1, "count": 3}))
    with pytest.raises(CloudflareQueuesNotFoundError, match="no queue named 'ordres'") as caught:
        script.run(flows.get_metrics(ctx, queue="ordres"))
    assert caught.value.hint == "did you mean 'orders' or 'orders-dlq'?"
    script = Script(ok([], result_info={"page": 1, "count": 0}), ok(names, result_info={"page": 1, "count": 3}))
    with pytest.raises(CloudflareQueuesNotFoundError) as caught:
        script.run(flows.get_metrics(ctx, queue="billing"))
    assert "wrangler queues create billing" in (caught.value.hint or "")


def test_a_push_is_chunked_into_the_fewest_batches(ctx: FlowContext) -> None:
    metrics = {"metadata": {"metrics": {**METRICS, "backlog_count": 250}}}
    script = Script(*[ok(metrics)] * 3)
    result = script.run(
        flows.push_messages(
            ctx,
            messages=[{"n": n} for n in range(250)],
            queue=QUEUE_ID,
            delay_seconds=None,
            content_type=None,
            preserve_order=False,
        )
    )
    assert (result.messages, result.requests) == (250, 3)
    sizes = [len(json.loads(request.body or b"")["messages"]) for request in script.sent]
    assert sorted(sizes) == [50, 100, 100] and script.operations == ["push_batch"] * 3


def test_a_push_that_fails_half_way_says_what_was_sent(ctx: FlowContext) -> None:
    script = Script(ok({}), error(400, 10207, "JSONRequestBodyInvalid"))
    with pytest.raises(CloudflareQueuesPushError) as caught:
        script.run(
            flows.push_messages(
                ctx,
                messages=list(range(150)),
                queue=QUEUE_ID,
                delay_seconds=None,
                content_type=None,
                preserve_order=True,
            )
        )
    err = caught.value
    assert (len(err.pushed), len(err.failed), len(err.not_sent)) == (100, 50, 0)
    assert err.pushed == list(range(100))


def test_an_ack_resent_after_a_lost_answer(ctx: FlowContext) -> None:
    # the resend finds the lease acked by the lost attempt: settled
    script = Script(LOST, ok({"ackCount": 0, "retryCount": 0, "warnings": {"l1": "lease already acked; ignored"}}))
    result = script.run(flows.ack_messages(ctx, queue=QUEUE_ID, acks=["l1"], retries=[]))
    assert result.unconfirmed == {} and result.not_applied == {}
    # the resend cannot tell (the lease expired meanwhile): unconfirmed, never guessed either way
    script = Script(LOST, ok({"ackCount": 0, "retryCount": 0, "warnings": {"l1": "lease expired"}}))
    result = script.run(flows.ack_messages(ctx, queue=QUEUE_ID, acks=["l1"], retries=[]))
    assert list(result.unconfirmed) == ["l1"] and "may have applied it" in result.unconfirmed["l1"]
    assert result.not_applied == {}


def test_an_ack_of_more_than_100_leases_is_split(ctx: FlowContext) -> None:
    script = Script(ok({"ackCount": 100, "retryCount": 0, "warnings": {}}), ok({"ackCount": 20, "retryCount": 5}))
    leases = [f"lease-{n}" for n in range(120)]
    result = script.run(
        flows.ack_messages(ctx, queue=QUEUE_ID, acks=leases, retries=[(f"r-{n}", 30) for n in range(5)])
    )
    assert (result.ack_count, result.retry_count) == (120, 5)
    bodies = [json.loads(request.body or b"") for request in script.sent]
    assert [len(b["acks"]) + len(b.get("retries", [])) for b in bodies] == [100, 25]


def test_a_lost_create_answer_returns_the_queue_the_lost_attempt_made(ctx: FlowContext) -> None:
    script = Script(
        LOST,
        error(409, 11009, "A queue named 'orders' already exists"),
        ok([queue("orders")], result_info={"page": 1, "count": 1}),
        ok(queue("orders")),
    )
    created = script.run(admin_flows.create_queue(ctx, name="orders", settings=queue_settings()))
    assert created.queue_id == QUEUE_ID
    assert script.operations == ["create_queue", "create_queue", "list_queues", "get_queue"]


def test_the_async_driver_runs_the_same_flows(ctx: FlowContext) -> None:
    script = Script(error(503, 15000, "internal"), ok(METRICS))

    async def send(request: ApiRequest) -> RawResponse:
        return script.send(request)

    async def sleep(seconds: float) -> None:
        script.sleep(seconds)

    metrics = asyncio.run(flows.arun(flows.get_metrics(ctx, queue=QUEUE_ID), send, sleep))
    assert metrics.backlog_count == 0 and script.operations == ["metrics", "metrics"] and len(script.slept) == 1
