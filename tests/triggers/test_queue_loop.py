"""
Watchers of one queue through :class:`~airflow_provider_cfqueues.testing.WatcherHarness` (Airflow's own
``SharedStreamManager``, the provider's loop, the emulator over HTTP): one loop per queue however it is
spelled and whatever the settings, conflicts and splits that hold the loop instead of losing messages,
a restart that waits for its watchers, and filters that must answer a bool.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import textwrap
from collections import Counter
from typing import Any

import pytest

from airflow_provider_cfqueues.consume.poison import PoisonEnvelope
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
from airflow_provider_cfqueues.testing import MemoryStore, WatcherHarness
from airflow_provider_cfqueues.triggers.message import CloudflareQueuesMessageTrigger

pytestmark = pytest.mark.airflow3

FAST = {"poll_interval": 0.02, "max_poll_interval": 0.05}
ORDERS = {"field": "kind", "equals": "order"}
REFUNDS = {"field": "kind", "equals": "refund"}
SHOP = {"on_rejected": "poison", "poison_queue": "unrouted"}


@pytest.fixture
def strict(emulator: CloudflareQueuesEmulator, connection: str) -> str:
    """A queue whose consumer allows one delivery and has no dead-letter queue: any give-back deletes."""
    emulator.state.record_events = True
    emulator.create_queue("strict", max_retries=0)
    return emulator.queue("strict").queue_id


def journal(emulator: CloudflareQueuesEmulator, kind: str) -> Counter[str]:
    """How many times each message of the strict queue appears in the emulator's ``kind`` entries."""
    queue_id = next(q.queue_id for q in emulator.state.accounts[emulator.account_id].values() if "strict" in q.name)
    return Counter(m for e in emulator.events if e.kind == kind and e.queue_id == queue_id for m in e.message_ids)


def push_kinds(emulator: CloudflareQueuesEmulator, kinds: list[str]) -> dict[str, str]:
    """Push one message per kind; return message id -> kind."""
    CloudflareQueuesHook(queue="strict").push_messages([{"kind": k, "n": n} for n, k in enumerate(kinds)])
    pushed = [m for e in emulator.events if e.kind == "push" for m in e.message_ids]
    return dict(zip(pushed[-len(kinds) :], kinds, strict=True))


def watcher(queue: str = "strict", **kwargs: Any) -> CloudflareQueuesMessageTrigger:
    return CloudflareQueuesMessageTrigger(cloudflare_queue=queue, **{**FAST, **kwargs})


def test_one_loop_per_queue_however_spelled_and_whatever_the_settings(
    emulator: CloudflareQueuesEmulator, strict: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SECOND_ACCOUNT_CONN", json.dumps(emulator.airflow_connection()))
    sent = push_kinds(emulator, ["order", "refund", "order"] * 40)
    by_name = watcher(message_filter=ORDERS, batch_size=50, max_messages_per_event=20)
    by_id = watcher(strict, message_filter=REFUNDS, poll_interval=0.03, cloudflare_queues_conn_id="second_account_conn")
    assert by_name.shared_stream_key() != by_id.shared_stream_key()  # two Airflow groups ...

    async def go() -> WatcherHarness:
        async with WatcherHarness() as triggerer:
            orders = triggerer.watch(by_name, asset="orders")
            refunds = triggerer.watch(by_id, asset="refunds")
            await triggerer.until(lambda: emulator.metrics("strict")["backlog_count"] == 0)
            assert len(triggerer.directory.loops) == 1  # ... one loop
            (loop,) = triggerer.directory.loops.values()
            assert (loop.pull.batch_size, loop.pull.poll_interval, loop.pull.max_messages_per_event) == (100, 0.02, 100)
            # renamed after its name was resolved: a watcher naming it anew joins the same loop
            emulator.state.update_queue(emulator.account_id, strict, {"queue_name": "strict-renamed"})
            late = triggerer.watch(watcher("strict-renamed", message_filter=ORDERS), asset="late")
            await triggerer.until(lambda: str(late) in loop.watchers)  # it joined the loop there was
            assert list(triggerer.directory.loops.values()) == [loop]
            assert (orders, refunds) == tuple(triggerer.events)[:2]
        return triggerer

    triggerer = asyncio.run(go())
    orders, refunds, _ = triggerer.events
    got = {m["id"]: "order" for m in triggerer.messages(orders)} | {
        m["id"]: "refund" for m in triggerer.messages(refunds)
    }
    assert got == sent  # every message reached the watcher that wanted it, once
    assert max(len(p["messages"]) for p in triggerer.events[orders]) <= 20  # each watcher's own event size
    assert set(journal(emulator, "deliver").values()) == {1} and len(journal(emulator, "ack")) == 120
    assert not journal(emulator, "retry") and not journal(emulator, "drop")  # nothing given back, nothing deleted


def test_watchers_that_disagree_on_settling_hold_the_loop_and_name_each_other(
    emulator: CloudflareQueuesEmulator, strict: str, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.create_queue("unrouted")
    caplog.set_level(logging.ERROR)

    async def go() -> None:
        async with WatcherHarness(start_delay=60) as triggerer:  # both join before the loop could pull
            triggerer.watch(watcher(message_filter=ORDERS, on_rejected="poison", poison_queue="unrouted"), asset="o")
            other = triggerer.watch(watcher(message_filter=REFUNDS), asset="r")  # on_rejected="retry"
            await triggerer.until(lambda: "not pulling" in caplog.text)
            triggerer.directory.start_delay = 0
            push_kinds(emulator, ["order", "refund", "mystery"])
            await asyncio.sleep(0.5)
            assert emulator.app.requests["pull"] == 0  # held: nothing pulled, so nothing lost
            await triggerer.stop(other)  # the DAG is fixed: the old watcher goes
            fixed = triggerer.watch(
                watcher(message_filter=REFUNDS, on_rejected="poison", poison_queue="unrouted"), asset="r"
            )
            await triggerer.until(lambda: emulator.metrics("strict")["backlog_count"] == 0)
            assert [m["body"]["kind"] for m in triggerer.messages(fixed)] == ["refund"]

    asyncio.run(go())
    assert "asset(s) 'o' (trigger" in caplog.text and "asset(s) 'r' (trigger" in caplog.text
    assert "give every watcher of the queue the same on_rejected, poison_queue and message_retry_delay" in caplog.text
    assert [
        PoisonEnvelope.read(json.loads(base64.b64decode(m.body))).body["kind"] for m in emulator.messages("unrouted")
    ] == ["mystery"]
    assert not journal(emulator, "drop")


def test_a_watcher_in_another_ack_mode_is_refused_beside_persisted_ones(
    emulator: CloudflareQueuesEmulator, strict: str
) -> None:
    push_kinds(emulator, ["order"])

    async def go() -> WatcherHarness:
        async with WatcherHarness() as triggerer:
            persisted = triggerer.watch(watcher(), asset="orders")
            await triggerer.until(lambda: len(triggerer.messages(persisted)) == 1)
            dag_mode = triggerer.watch(watcher(ack="dag"), asset="everything")
            await triggerer.until(lambda: dag_mode in triggerer.errors)
            push_kinds(emulator, ["order"])  # still the persisted watcher's
            await triggerer.until(lambda: len(triggerer.messages(persisted)) == 2)
            assert persisted not in triggerer.errors and not triggerer.events[dag_mode]
        return triggerer

    triggerer = asyncio.run(go())
    error = str(triggerer.errors[max(triggerer.events)])
    assert "(ack='dag') is refused on queue 'strict'" in error and "asset(s) 'orders'" in error
    assert set(journal(emulator, "deliver").values()) == {1} and not journal(emulator, "drop")


def test_a_split_across_two_triggerers_holds_both_sides_and_loses_nothing(
    emulator: CloudflareQueuesEmulator, strict: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes (two harnesses, one registry): each holds a watcher; neither pulls until one is gone."""
    caplog.set_level(logging.ERROR)
    deployment = MemoryStore()
    emulator.create_queue("unrouted")

    async def go() -> tuple[WatcherHarness, dict[str, str]]:
        first = WatcherHarness(deployment, where="triggerer-1")
        second = WatcherHarness(deployment, where="triggerer-2")
        first.watch(watcher(message_filter=ORDERS, **SHOP), asset="orders")
        second.watch(watcher(message_filter=REFUNDS, **SHOP), asset="refunds")
        await first.until(lambda: caplog.text.count("another triggerer process") >= 2)
        pulls = emulator.app.requests["pull"]  # of an empty queue, before the second process was there
        sent = push_kinds(emulator, ["order", "refund"] * 10)
        await asyncio.sleep(0.5)
        assert emulator.app.requests["pull"] == pulls  # both sides hold: nothing pulled
        await second.stop()  # the operator fixes the deployment: every watcher in one triggerer
        third = first.watch(watcher(message_filter=REFUNDS, **SHOP), asset="refunds")
        await first.until(lambda: len(first.messages(third)) == 10 and emulator.metrics("strict")["backlog_count"] == 0)
        await first.stop()
        return first, sent

    first, sent = asyncio.run(go())
    assert "triggerer-1: watchers of 'orders'" in caplog.text and "triggerer-2: watchers of 'refunds'" in caplog.text
    assert "[triggerer] queues_enabled = True" in caplog.text
    got = {m["id"]: m["body"]["kind"] for t in first.events for m in first.messages(t)}
    assert got == sent
    assert set(journal(emulator, "deliver").values()) == {1} and not journal(emulator, "drop")
    assert not emulator.messages("unrouted")  # nothing misrouted


def test_a_restarted_triggerer_waits_for_every_watcher_it_held(emulator: CloudflareQueuesEmulator, strict: str) -> None:
    deployment = MemoryStore()

    async def go() -> tuple[WatcherHarness, dict[str, str]]:
        before = WatcherHarness(deployment, where="before")
        orders = before.watch(watcher(message_filter=ORDERS), asset="orders")
        refunds = before.watch(watcher(message_filter=REFUNDS), asset="refunds")
        await before.until(lambda: emulator.app.requests["pull"] > 0)
        await before.stop()  # a clean stop leaves the list of its watchers for the next process
        await asyncio.sleep(0.5)  # a pull the stopped loop had sent when it was cancelled lands first
        sent = push_kinds(emulator, ["refund", "order"] * 5)
        after = WatcherHarness(deployment, where="after")  # the same trigger rows come back, one by one
        after.watch(watcher(message_filter=ORDERS), asset="orders", trigger_id=orders)
        await asyncio.sleep(1.0)
        assert not set(journal(emulator, "deliver")) & set(sent)  # the refunds' watcher is not back: nothing
        assert emulator.metrics("strict")["backlog_count"] == 10
        after.watch(watcher(message_filter=REFUNDS), asset="refunds", trigger_id=refunds)
        await after.until(lambda: emulator.metrics("strict")["backlog_count"] == 0)
        await after.stop()
        return after, sent

    after, sent = asyncio.run(go())
    got = {m["id"]: m["body"]["kind"] for t in after.events for m in after.messages(t)}
    assert got == sent
    assert not journal(emulator, "drop") and not journal(emulator, "retry")


def not_a_bool(message: dict[str, Any]) -> object:
    return "false"  # a string, which Python reads as true


def test_a_filter_must_answer_a_bool(
    emulator: CloudflareQueuesEmulator, strict: str, caplog: pytest.LogCaptureFixture
) -> None:
    push_kinds(emulator, ["order", "order"])
    sloppy = watcher(message_filter=f"{__name__}.not_a_bool")
    assert not sloppy.wants({"id": "m1", "body": {}}) and not sloppy.wants({"id": "m2", "body": {}})
    assert caplog.text.count("returned 'false' (a str), not True or False") == 1  # once per watcher
    assert "message_filter" in caplog.text and "return a bool" in caplog.text


def test_the_routing_recipe_of_the_testing_docs(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    """docs/testing.md: two DAGs' watchers of one queue through WatcherHarness, as pasted by a user."""
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "testing.md").read_text()
    section = docs[docs.index("Several DAGs watching one queue") :]
    code = textwrap.dedent(section.split("```python\n", 1)[1].split("```", 1)[0])
    recipe: dict[str, Any] = {}
    exec(compile(code, "docs/testing.md", "exec"), recipe)  # noqa: S102 - our own documentation
    emulator.create_queue("shop")
    emulator.create_queue("shop-unrouted")
    recipe["test_orders_and_refunds_reach_their_dags"](emulator, connection)


def test_a_loop_that_is_pulling_holds_within_a_second_when_another_process_joins(
    emulator: CloudflareQueuesEmulator, strict: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    deployment = MemoryStore()

    async def go() -> None:
        first = WatcherHarness(deployment, where="triggerer-1", heartbeat=5.0, start_delay=0)  # beats far apart
        first.watch(watcher(message_filter=ORDERS), asset="orders")
        await first.until(lambda: emulator.app.requests["pull"] > 3)  # pulling
        second = WatcherHarness(deployment, where="triggerer-2", heartbeat=5.0)
        second.watch(watcher(message_filter=REFUNDS), asset="refunds")
        await first.until(lambda: caplog.text.count("another triggerer process") >= 2, timeout=4)
        pulls = emulator.app.requests["pull"]
        push_kinds(emulator, ["refund"] * 3)
        await asyncio.sleep(1.5)
        assert emulator.app.requests["pull"] == pulls and emulator.metrics("strict")["backlog_count"] == 3
        await second.stop()
        await first.stop()

    asyncio.run(go())
    assert not journal(emulator, "drop")
