"""Peek and purge by reference, through the hook (sync and async) and the official SDK, against the emulator:
a peek leases nothing and spends no attempt; a purge by ref deletes exactly the peeked messages."""

from __future__ import annotations

import asyncio

import cloudflare
import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesNotFoundError, CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.models import PeekedMessage
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook


def test_a_peek_leases_nothing_and_spends_no_attempt(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    emulator.create_queue("orders")
    hook.push_messages([{"n": n} for n in range(8)], queue="orders")
    first = hook.peek_messages(queue="orders", batch_size=5)
    again = hook.peek_messages(queue="orders", batch_size=5)
    assert [m.body for m in first.messages] == [{"n": n} for n in range(5)] == [m.body for m in again.messages]
    assert all(isinstance(m, PeekedMessage) and m.attempts == 0 and m.ref for m in first.messages)
    assert {m.ref for m in first.messages}.isdisjoint(m.ref for m in again.messages)  # a ref per peek
    assert {(m.state, m.attempts) for m in emulator.messages("orders")} == {("available", 0)}
    pulled = hook.pull_messages(queue="orders", batch_size=8).messages
    assert [m.attempts for m in pulled] == [1] * 8  # the first delivery is still the first


def test_purge_by_ref_deletes_exactly_those_and_warns_about_the_rest(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    emulator.create_queue("orders")
    hook.push_messages([{"n": n, "poison": n in (1, 3)} for n in range(5)], queue="orders")
    peeked = hook.peek_messages(queue="orders", batch_size=5).messages
    poison = [m for m in peeked if m.body["poison"]]
    delivered = hook.pull_messages(queue="orders", batch_size=1).messages  # n=0, delivered after the peek
    result = hook.purge_messages("orders", [*poison, peeked[0].ref, {"ref": "never-peeked"}])
    assert result.purged == 2 and result.requests == 1
    assert set(result.warnings) == {peeked[0].ref, "never-peeked"}
    assert "delivered after it was peeked" in result.warnings[peeked[0].ref]
    left = sorted(m.body for m in emulator.messages("orders"))  # raw bodies, base64 of the JSON
    assert len(left) == 3 and delivered[0].body == {"n": 0, "poison": False}
    again = hook.purge_messages("orders", poison)  # refs are used up once purged
    assert again.purged == 0 and all("unknown ref" in why for why in again.warnings.values())


def test_purge_by_ref_acts_only_on_the_queue_named(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match="acts only on the queue it is given"):
        hook.purge_messages("", ["ref"])
    with pytest.raises(CloudflareQueuesValidationError, match=r"refs\[0\] must be a ref"):
        hook.purge_messages("orders", [42])
    for not_a_list in ("abc", None, "", b"abc", {"ref": "x"}):  # a string would be sent as its characters
        with pytest.raises(CloudflareQueuesValidationError, match="refs must be a list of refs"):
            hook.purge_messages("orders", not_a_list)  # type: ignore[arg-type]
    with pytest.raises(CloudflareQueuesNotFoundError, match="no queue named 'orders'"):
        hook.purge_messages("orders", [])  # nothing to purge, but only once the queue is confirmed
    emulator.create_queue("orders")
    assert hook.purge_messages("orders", []).purged == 0
    assert emulator.app.requests["purge_messages"] == 0


def test_a_ref_given_twice_is_purged_once_and_reported_as_a_duplicate(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    emulator.create_queue("orders")
    hook.push_messages(["one", "two"], queue="orders")
    first, second = hook.peek_messages(queue="orders", batch_size=2).messages
    result = hook.purge_messages("orders", [first.ref, first, {"ref": first.ref}, second.ref])
    assert (result.purged, result.duplicates, result.warnings) == (2, [first.ref], {})
    assert emulator.metrics("orders")["backlog_count"] == 0


def test_the_async_path_peeks_and_purges_alike(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    emulator.create_queue("orders")
    hook.push_messages(["a", "b"], queue="orders")

    async def peek_and_purge() -> tuple[list[str], int]:
        peeked = await hook.apeek_messages(queue="orders", batch_size=10)
        result = await hook.apurge_messages("orders", peeked.messages[:1])
        await hook.aclose()
        return [m.body for m in peeked.messages], result.purged

    assert asyncio.run(peek_and_purge()) == (["a", "b"], 1)
    assert emulator.metrics("orders")["backlog_count"] == 1


def test_the_official_sdk_peeks_and_purges_against_the_emulator(emulator: CloudflareQueuesEmulator) -> None:
    queue = emulator.create_queue("orders")
    client = cloudflare.Cloudflare(api_token=emulator.token, base_url=emulator.base_url, max_retries=0)
    account = emulator.account_id
    texts = [{"body": "x", "content_type": "text"}, {"body": "y", "content_type": "text"}]
    client.queues.messages.bulk_push(queue.id, account_id=account, messages=texts)  # type: ignore[arg-type]
    peek = client.queues.messages.peek(queue.id, account_id=account, batch_size=2)
    assert peek is not None and peek.messages is not None and [m.body for m in peek.messages] == ["x", "y"]
    assert all(m.ref and m.attempts == 0 for m in peek.messages)
    purge = client.queues.messages.purge(
        queue.id, account_id=account, refs=[{"ref": peek.messages[0].ref or ""}, {"ref": "unknown"}]
    )
    assert purge is not None and purge.errors == [] and list(purge.warnings or {}) == ["unknown"]
    assert emulator.metrics("orders")["backlog_count"] == 1
    client.close()
