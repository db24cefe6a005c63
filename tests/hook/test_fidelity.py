"""The client where Cloudflare differs from a naive reading of its docs: paused delivery, whole-second
delays, both encodings of json bodies, and queue listings without a page count."""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_provider_cfqueues.api import flows
from airflow_provider_cfqueues.api.errors import CloudflareQueuesDeliveryPausedError, CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.operations import ApiRequest, RawResponse
from airflow_provider_cfqueues.consume.drain import Drainer
from airflow_provider_cfqueues.consume.drain_plan import DrainPlan
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import FAST_RETRY


def test_a_paused_queue_is_a_typed_error_not_retried(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    emulator.create_queue("q")
    hook.push_messages([1, 2], queue="q")
    emulator.pause_delivery("q")
    before = emulator.app.requests["pull"]
    with pytest.raises(CloudflareQueuesDeliveryPausedError, match="resume-delivery"):
        hook.pull_messages(queue="q")
    with pytest.raises(CloudflareQueuesDeliveryPausedError):
        asyncio.run(hook.apull_messages(queue="q"))
    assert emulator.app.requests["pull"] - before == 2  # one request each: a pause is not retried
    assert hook.get_metrics("q").backlog_count == 2  # metrics still work while paused
    hook.push_messages([3], queue="q")  # and pushes are kept
    emulator.resume_delivery("q")
    assert len(hook.pull_messages(queue="q", batch_size=10).messages) == 3


def test_fractional_delays_are_refused_before_sending(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    emulator.create_queue("q")
    hook.push_messages([1], queue="q")
    (message,) = hook.pull_messages(queue="q").messages
    sent = sum(emulator.app.requests.values())
    with pytest.raises(CloudflareQueuesValidationError, match="whole seconds"):
        hook.push_messages([1], queue="q", delay_seconds=0.5)
    with pytest.raises(CloudflareQueuesValidationError, match="whole seconds"):
        hook.ack_messages(queue="q", retries=[(message, 2.5)])
    assert sum(emulator.app.requests.values()) == sent


@pytest.mark.parametrize("json_bodies", ["base64", "plain", "mixed"])
def test_pull_and_drain_read_every_json_body_encoding(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook, connection: str, json_bodies: str
) -> None:
    emulator.create_queue("q")
    bodies = [{"n": n, "s": "ü"} for n in range(30)] + [[1, 2], "text", 7]
    hook.push_messages(bodies, queue="q")
    pulled = hook.pull_messages(queue="q", batch_size=5).messages
    assert all(m.decode_error is None for m in pulled)
    hook.ack_messages(queue="q", retries=pulled)
    seen: list[object] = []
    summary = Drainer(
        lambda: CloudflareQueuesHook(connection, queue="q", retry_policy=FAST_RETRY),
        "q",
        DrainPlan(batch_size=10),
        lambda message: seen.append(message.body),
        log=__import__("logging").getLogger("test"),
    ).run()
    assert summary.acked == len(bodies) and sorted(map(json.dumps, seen)) == sorted(map(json.dumps, bodies))


def test_queue_listings_are_read_until_a_short_page() -> None:
    """No ``result_info`` at all: pages of 100 are read until one comes back short."""
    names = [f"q{n:03d}" for n in range(250)]
    pages: list[int] = []

    def send(request: ApiRequest) -> RawResponse:
        page = int(dict(request.params)["page"])
        pages.append(page)
        chunk = names[(page - 1) * 100 : page * 100]
        result = [{"queue_id": f"{n:032x}", "queue_name": name} for n, name in enumerate(chunk)]
        return RawResponse(200, json.dumps({"success": True, "result": result}).encode(), {})

    ctx = flows.FlowContext(account_id="a" * 32, scope="paging-test")
    queues = flows.run(flows.list_queues(ctx), send, lambda _: None)
    assert [q.queue_name for q in queues] == names and pages == [1, 2, 3]
