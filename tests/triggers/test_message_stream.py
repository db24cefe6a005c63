"""
The message trigger on Airflow 3.3's shared streams (``ack="persisted"``), against the emulator: the
producer settling scripted outcomes, watchers with filters sharing one pull loop through Airflow's own
``SharedStreamManager`` (the triggerer's persistence confirmations played by the test), ``run()`` on
its own, and the trigger's arguments.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import textwrap
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError, CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.loop_rules import WatcherSpec
from airflow_provider_cfqueues.consume.poison import PoisonEnvelope
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
from airflow_provider_cfqueues.testing import MemoryStore, WatcherHarness
from airflow_provider_cfqueues.triggers.message import CloudflareQueuesMessageTrigger
from airflow_provider_cfqueues.triggers.queue_loop import Directory, LoopBatch, QueueLoop, Tap

from ..scripted_faults import ScriptedFaults

pytestmark = pytest.mark.airflow3

FAST = {"poll_interval": 0.02, "max_poll_interval": 0.05}


@pytest.fixture
def inbox(emulator: CloudflareQueuesEmulator, connection: str) -> CloudflareQueuesHook:
    emulator.state.record_events = True
    emulator.create_queue("inbox")
    return CloudflareQueuesHook(queue="inbox")


def trigger(**kwargs: Any) -> CloudflareQueuesMessageTrigger:
    return CloudflareQueuesMessageTrigger(cloudflare_queue="inbox", **{**FAST, **kwargs})


def bodies(emulator: CloudflareQueuesEmulator, queue: str) -> list[Any]:
    """The bodies of the messages still in ``queue`` (JSON ones decoded)."""
    return [
        json.loads(base64.b64decode(m.body)) if m.content_type == "json" else m.body for m in emulator.messages(queue)
    ]


def states(emulator: CloudflareQueuesEmulator, queue: str = "inbox") -> dict[Any, tuple[str, int]]:
    """body (an object as sorted JSON text) -> (state, attempts) of the messages still in ``queue``."""
    return {
        json.dumps(body, sort_keys=True) if isinstance(body, dict) else body: (m.state, m.attempts)
        for body, m in zip(bodies(emulator, queue), emulator.messages(queue), strict=True)
    }


def directory() -> Directory:
    """A process of its own for each test (its loops, a registry in memory)."""
    return Directory(MemoryStore(), heartbeat=0.05, ack_timeout=300.0)


async def open_loop(
    watcher: CloudflareQueuesMessageTrigger, where: Directory | None = None
) -> tuple[QueueLoop, Tap, WatcherSpec]:
    """The watcher's queue loop, a tap for its group, and the watcher joined: what the triggerer sets up."""
    loop = await (where or directory()).loop_for(*watcher._route())
    tap = loop.attach(watcher._route())
    spec = watcher.watcher_spec()
    loop.join(spec, watcher._route())
    return loop, tap, spec


async def batches(tap: Tap, count: int = 1) -> list[LoopBatch]:
    """The first ``count`` batches the loop fans out to ``tap``."""
    taken: list[LoopBatch] = []
    async for batch in tap.stream():
        taken.append(batch)
        if len(taken) == count:
            return taken
    raise AssertionError("no batch")


def mark(loop: QueueLoop, spec: WatcherSpec, batch: LoopBatch, *positions: int) -> tuple[LoopBatch, bool]:
    """What a watcher's filter does: see the batch and fire the messages at ``positions``."""
    loop.saw(batch.streamed.batch_id, spec.key, (batch.messages[n].id for n in positions))
    return batch, False


async def close(loop: QueueLoop, tap: Tap, spec: WatcherSpec) -> None:
    loop.leave(spec.key)
    tap.close()
    await asyncio.gather(*loop.directory.closing)


def test_the_loop_settles_every_outcome(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook, caplog: pytest.LogCaptureFixture
) -> None:
    inbox.push_messages(list(range(8)))

    async def go() -> None:
        loop, tap, spec = await open_loop(trigger(message_retry_delay=10, batch_size=2, max_messages_per_event=2))
        first, second, third, fourth = await batches(tap, 4)
        assert (loop.in_flight, len(loop.batches)) == (8, 4)
        await tap.resolve(
            [
                mark(loop, spec, first, 0),  # 0 taken and stored; 1 wanted by nobody
                (mark(loop, spec, second, 0, 1)[0], True),  # Airflow failed it: an event may be missing
                (third, False),  # resolved, but the watcher never saw it (it left first)
                mark(loop, spec, fourth),  # seen, wanted by nobody
            ]
        )
        assert (loop.in_flight, len(loop.batches)) == (0, 0)
        await close(loop, tap, spec)

    asyncio.run(go())
    assert states(emulator) == {
        1: ("delayed", 1),  # on_rejected="retry": message_retry_delay, 10 s
        2: ("delayed", 1),  # the provider's backoff: 30 s
        3: ("delayed", 1),
        4: ("available", 1),  # at once: nobody can say it was unwanted
        5: ("available", 1),
        6: ("delayed", 1),
        7: ("delayed", 1),
    }
    waits = sorted(round(m.visible_at - emulator.clock.now()) for m in emulator.messages("inbox"))
    assert waits == [0, 0, 10, 10, 10, 30, 30]
    assert journal_ids(emulator, "inbox") == [pushed_ids(emulator, "inbox")[0]]  # acked once


def pushed_ids(emulator: CloudflareQueuesEmulator, queue: str) -> list[str]:
    """The ids of the messages pushed to ``queue``, in order (the emulator's journal)."""
    queue_id = emulator.queue(queue).queue_id
    return [m for e in emulator.events if e.kind == "push" and e.queue_id == queue_id for m in e.message_ids]


def journal_ids(emulator: CloudflareQueuesEmulator, queue: str, kind: str = "ack") -> list[str]:
    """The ids of the messages of ``queue`` in the journal's ``kind`` entries (one per time)."""
    queue_id = emulator.queue(queue).queue_id
    return [m for e in emulator.events if e.kind == kind and e.queue_id == queue_id for m in e.message_ids]


def test_rejected_messages_go_to_the_poison_queue(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook
) -> None:
    emulator.create_queue("unrouted")
    inbox.push_messages([{"kind": "order"}, {"kind": "mystery"}])

    async def go() -> None:
        loop, tap, spec = await open_loop(trigger(on_rejected="poison", poison_queue="unrouted"))
        (batch,) = await batches(tap)
        await tap.resolve([mark(loop, spec, batch, 0)])  # the mystery: nobody's
        await close(loop, tap, spec)

    asyncio.run(go())
    assert emulator.metrics("inbox")["backlog_count"] == 0  # both acked: the second once it was routed
    (envelope,) = map(PoisonEnvelope.read, bodies(emulator, "unrouted"))  # the copy keeps its context
    assert envelope.original().body == {"kind": "mystery"} and envelope.source["queue"] == "inbox"
    assert envelope.source["attempts"] == 1 and envelope.reason.startswith("no watcher of the queue wanted it")


def test_a_poison_copy_the_poison_queue_did_not_take_is_given_back_not_acked(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook, caplog: pytest.LogCaptureFixture
) -> None:
    """The poison queue was deleted after the loop checked it: the push fails, so the original is given
    back with the backoff (to be routed when it comes again), never acked."""
    emulator.create_queue("unrouted")
    inbox.push_messages([{"kind": "mystery"}])

    async def go() -> None:
        loop, tap, spec = await open_loop(trigger(on_rejected="poison", poison_queue="unrouted"))
        (batch,) = await batches(tap)
        CloudflareQueuesHook().delete_queue("unrouted")
        await tap.resolve([mark(loop, spec, batch)])  # nobody's
        await close(loop, tap, spec)

    with caplog.at_level(logging.WARNING):
        asyncio.run(go())
    assert states(emulator) == {json.dumps({"kind": "mystery"}): ("delayed", 1)}
    assert "Routing 1 message(s) of queue inbox to its poison queue failed" in caplog.text


def test_a_missing_or_circular_poison_queue_fails_before_the_first_pull(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook
) -> None:
    inbox.push_messages(["x"])
    for poison, refused, says in (
        ("nowhere", CloudflareQueuesConfigError, "'nowhere', which does not exist"),
        ("inbox", CloudflareQueuesValidationError, "'inbox', the queue being watched: route poison messages elsewhere"),
    ):

        async def go(poison: str = poison) -> None:
            loop, tap, spec = await open_loop(trigger(on_rejected="poison", poison_queue=poison))
            try:
                await batches(tap)
            finally:
                await close(loop, tap, spec)

        with pytest.raises(refused, match=says):
            asyncio.run(go())
    assert emulator.app.requests["pull"] == 0


def test_dead_letter_needs_a_dead_letter_queue_and_spends_the_deliveries_at_once(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook
) -> None:
    async def first_batch(watcher: CloudflareQueuesMessageTrigger) -> None:
        loop, tap, spec = await open_loop(watcher)
        try:
            await batches(tap)
        finally:
            await close(loop, tap, spec)

    with pytest.raises(CloudflareQueuesValidationError, match="has no dead-letter queue: rejected messages would be"):
        asyncio.run(first_batch(trigger(on_rejected="dead_letter")))

    emulator.create_queue("strict", max_retries=1, dead_letter_queue="strict-dlq")
    CloudflareQueuesHook(queue="strict").push_messages(["unwanted"])
    watcher = CloudflareQueuesMessageTrigger(cloudflare_queue="strict", on_rejected="dead_letter", **FAST)

    async def reject_until_gone() -> int:
        loop, tap, spec = await open_loop(watcher)
        deliveries = 0

        async def reject_every_batch() -> None:
            nonlocal deliveries
            async for batch in tap.stream():
                deliveries += 1
                await tap.resolve([mark(loop, spec, batch)])

        rejecting = asyncio.ensure_future(reject_every_batch())
        # the emulator dead-letters when the queue is next used (the loop's next pull): wait for it
        while not emulator.metrics("strict-dlq")["backlog_count"]:
            await asyncio.sleep(0.02)
        rejecting.cancel()
        await asyncio.gather(rejecting, return_exceptions=True)
        await close(loop, tap, spec)
        return deliveries

    assert asyncio.run(asyncio.wait_for(reject_until_gone(), 10)) == 2  # max_retries=1: two deliveries
    assert emulator.metrics("strict")["backlog_count"] == 0


def test_a_lost_or_failed_ack_is_logged_never_raised(
    emulator: CloudflareQueuesEmulator,
    inbox: CloudflareQueuesHook,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection = emulator.airflow_connection()
    monkeypatch.setenv(
        "AIRFLOW_CONN_FEW_ATTEMPTS", json.dumps({**connection, "extra": {**connection["extra"], "max_attempts": 2}})
    )
    inbox.push_messages(["lost", "refused"])
    caplog.set_level(logging.WARNING)

    async def go() -> QueueLoop:
        loop, tap, spec = await open_loop(trigger(cloudflare_queues_conn_id="few_attempts", max_messages_per_event=1))
        lost, refused = await batches(tap, 2)
        emulator.app.faults = ScriptedFaults({"ack": ["lost"]})  # applied, then the answer is lost
        await tap.resolve([mark(loop, spec, lost, 0)])  # sent again: "already acked", so settled
        emulator.app.faults = ScriptedFaults({"ack": ["error"] * 2})  # every attempt fails
        await tap.resolve([mark(loop, spec, refused, 0)])
        await close(loop, tap, spec)
        return loop

    loop = asyncio.run(go())
    assert loop.in_flight == 0
    assert states(emulator) == {"refused": ("leased", 1)}  # nothing guessed: it comes back when its lease expires
    assert "nothing was applied; they come back when their lease expires, and may reach the watchers twice" in (
        caplog.text
    )


# -- watchers sharing one loop through Airflow's SharedStreamManager ---------------------------------


def test_two_filtered_watchers_share_one_loop(emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook) -> None:
    emulator.create_queue("unrouted")
    stream = {"on_rejected": "poison", "poison_queue": "unrouted"}
    orders = trigger(**stream, batch_size=10, message_filter={"field": "kind", "equals": "order"})
    refunds = trigger(**stream, batch_size=20, poll_interval=0.03, message_filter={"field": "kind", "equals": "refund"})
    sent = [{"kind": kind, "n": n} for n in range(30) for kind in ("order", "refund", "order")][:75]
    sent += [{"kind": "mystery", "n": n} for n in range(5)]
    inbox.push_messages(sent)

    async def go() -> WatcherHarness:
        async with WatcherHarness() as triggerer:
            first = triggerer.watch(orders, asset="orders")
            second = triggerer.watch(refunds, asset="refunds")
            await triggerer.until(
                lambda: (
                    emulator.metrics("inbox")["backlog_count"] == 0
                    and emulator.metrics("unrouted")["backlog_count"] == 5
                )
            )
            assert len(triggerer.directory.loops) == 1  # one loop for both watchers, whatever their settings
            (loop,) = triggerer.directory.loops.values()
            assert loop.pull.batch_size == 20 and loop.pull.poll_interval == 0.02  # the most eager of each
            assert (first, second) == tuple(triggerer.events)
        return triggerer

    triggerer = asyncio.run(go())
    first, second = triggerer.events
    pushed = pushed_ids(emulator, "inbox")
    kinds = {pushed[n]: body["kind"] for n, body in enumerate(sent)}
    got_orders = [m["id"] for m in triggerer.messages(first)]
    got_refunds = [m["id"] for m in triggerer.messages(second)]
    assert sorted(got_orders) == sorted(m for m, k in kinds.items() if k == "order")  # 50 orders
    assert sorted(got_refunds) == sorted(m for m, k in kinds.items() if k == "refund")  # 25 refunds
    assert {p["ack"] for p in triggerer.events[first]} == {"persisted"}
    assert all("lease_id" not in m for m in triggerer.messages(first))  # the DAG acks nothing
    delivered, acked = Counter(journal_ids(emulator, "inbox", "deliver")), Counter(journal_ids(emulator, "inbox"))
    assert set(delivered.values()) == {1} and set(acked.values()) == {1} and len(acked) == 80  # once each
    unrouted = [PoisonEnvelope.read(b) for b in bodies(emulator, "unrouted")]
    assert sorted(e.body["n"] for e in unrouted) == [0, 1, 2, 3, 4]  # only the mysteries
    assert {tuple(e.routed_by["assets"]) for e in unrouted} == {("orders", "refunds")}


def test_a_watcher_that_never_stores_makes_the_messages_come_again(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__TRIGGERER__SHARED_STREAM_ACK_TIMEOUT", "0.5")
    inbox.push_messages(list(range(3)))

    async def go() -> WatcherHarness:
        async with WatcherHarness(ack_timeout=0.5) as triggerer:
            triggerer.watch(trigger(visibility_timeout=120))
            triggerer.watch(trigger(visibility_timeout=120), store=False)  # its events never reach the database
            await triggerer.until(lambda: {s for s, _ in states(emulator).values()} == {"delayed"})
        return triggerer

    triggerer = asyncio.run(go())
    first, second = triggerer.events
    assert type(triggerer.errors[second]).__name__ == "AckTimeout"
    assert len(triggerer.messages(first)) == 3  # the other watcher has them: at-least-once, duplicates later
    assert states(emulator) == dict.fromkeys(range(3), ("delayed", 1))  # given back with the backoff, once


# -- run() on its own ------------------------------------------------------------------------------


async def take(events: AsyncIterator[Any], count: int) -> list[dict[str, Any]]:
    taken = []
    async for event in events:
        taken.append(event.payload)
        if len(taken) == count:
            break
    return taken


def test_run_acks_what_was_taken_and_gives_back_what_was_not(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook
) -> None:
    inbox.push_messages([{"kind": "order", "n": 1}, {"kind": "refund"}, {"kind": "order", "n": 2}])
    watcher = trigger(message_filter={"field": "kind", "equals": "order"}, message_retry_delay=5)

    async def go() -> list[dict[str, Any]]:
        events = watcher.run()
        first = await take(events, 1)
        inbox.push_messages([{"kind": "order", "n": 3}])
        second = await take(events, 1)  # asking for it settles the first batch
        await events.aclose()  # the second was taken but its consumer stopped: given back
        return first + second

    taken = asyncio.run(go())
    assert [[m["body"]["n"] for m in p["messages"]] for p in taken] == [[1, 2], [3]]  # one event per batch
    # orders 1 and 2 acked; the refund wanted by nobody (back in 5 s); order 3's event not confirmed (30 s)
    assert states(emulator) == {'{"kind": "refund"}': ("delayed", 1), '{"kind": "order", "n": 3}': ("delayed", 1)}
    waits = sorted(round(m.visible_at - emulator.clock.now()) for m in emulator.messages("inbox"))
    assert waits == [5, 30]


# -- the arguments -----------------------------------------------------------------------------------


def test_the_ack_modes_and_the_deprecated_spelling() -> None:
    assert trigger().ack == "persisted"  # the default on Airflow 3.3+
    for old, new in ((True, "emitted"), (False, "dag")):
        with pytest.warns(DeprecationWarning, match=f"ack_on_emit={old}.*write ack='{new}'"):
            assert trigger(ack_on_emit=old).ack == new
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CloudflareQueuesValidationError, match="disagree"):
            trigger(ack="dag", ack_on_emit=True)
    with pytest.raises(CloudflareQueuesValidationError, match="ack must be one of 'persisted', 'dag', 'emitted'"):
        trigger(ack="later")


def test_persisted_is_refused_before_airflow_3_3(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_cfqueues.triggers import message

    monkeypatch.setattr(message, "shared_streams_available", lambda: False)
    assert trigger().ack == "dag"  # the default there
    with pytest.raises(CloudflareQueuesValidationError, match=r"shared streams of Airflow 3.3 .*; this is Airflow 3"):
        trigger(ack="persisted")


def test_the_lease_is_checked_against_the_ack_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        CloudflareQueuesValidationError, match=r"visibility_timeout=120 s .*shared_stream_ack_timeout=300 s"
    ):
        trigger(visibility_timeout=120)
    trigger(visibility_timeout=120, ack="dag")  # the DAG acks: the lease covers the run instead
    monkeypatch.setenv("AIRFLOW__TRIGGERER__SHARED_STREAM_ACK_TIMEOUT", "10")  # the DAG processor's config
    parsed = trigger(visibility_timeout=120)  # 10 s x 1.1 + 60 s fits
    monkeypatch.setenv("AIRFLOW__TRIGGERER__SHARED_STREAM_ACK_TIMEOUT", "600")  # the triggerer's: checked there

    async def first_event() -> None:
        async for _ in parsed.run():
            return

    with pytest.raises(CloudflareQueuesValidationError, match=r"=120 s .*ack_timeout=600 s.*at least 720 s"):
        asyncio.run(first_event())


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"on_rejected": "drop"}, "on_rejected must be one of 'retry', 'dead_letter', 'poison'"),
        ({"on_rejected": "poison"}, "needs poison_queue"),
        ({"poison_queue": "elsewhere"}, "needs poison_queue"),
        ({"ack": "dag", "message_filter": {"field": "kind", "equals": "x"}}, "message_filter settle messages"),
        ({"ack": "emitted", "on_rejected": "poison"}, "on_rejected, poison_queue|on_rejected settle"),
        ({"message_filter": "nodots"}, "not a dotted import path"),
        ({"message_filter": "tests.nowhere.wanted"}, "cannot import 'tests.nowhere.wanted'"),
        ({"message_filter": {"field": "kind"}}, "takes one of equals, in, exists"),
        ({"message_retry_delay": lambda n: 5}, "cannot be a function"),
    ],
)
def test_bad_arguments_fail_at_construction(arguments: dict[str, Any], says: str) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match=says):
        trigger(**arguments)


def wanted_by_callable(message: dict[str, Any]) -> bool:
    return bool(message["body"]["n"] % 2)


def test_serialization_and_the_shared_stream_key() -> None:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    from airflow_provider_cfqueues._compat import import_string

    odd = MessageQueueTrigger(
        scheme="cloudflare+queues",
        cloudflare_queue="inbox",
        message_filter=f"{__name__}.wanted_by_callable",
        message_retry_delay=15,
    )
    classpath, kwargs = odd.serialize()
    assert classpath == "airflow_provider_cfqueues.triggers.message.CloudflareQueuesMessageTrigger"
    assert kwargs["ack"] == "persisted" and kwargs["message_filter"] == f"{__name__}.wanted_by_callable"
    rebuilt = import_string(classpath)(**kwargs)  # what the triggerer does
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.wants({"id": "m", "body": {"n": 3}}) and not rebuilt.wants({"id": "m", "body": {"n": 4}})
    everything = CloudflareQueuesMessageTrigger(cloudflare_queue="inbox", message_retry_delay=15)
    assert rebuilt.shared_stream_key() == everything.shared_stream_key()  # filters differ: one group
    assert CloudflareQueuesMessageTrigger(cloudflare_queue="inbox", batch_size=10).shared_stream_key() == (
        everything.shared_stream_key()
    )  # pulled differently: the same group all the same (the loop merges the settings)
    assert everything.shared_stream_key() == ("cloudflare+queues", "cloudflare_queues_default", "", "inbox")
    assert CloudflareQueuesMessageTrigger(cloudflare_queue="inbox", ack="dag").shared_stream_key() is None


def test_the_watcher_recipe_of_the_testing_docs(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook
) -> None:
    """docs/testing.md: run the asset watcher's trigger against the emulator and read its first event."""
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "testing.md").read_text()
    section = docs[docs.index("## A DAG started by an asset watcher") :]
    code = textwrap.dedent(section.split("```python\n", 1)[1].split("```", 1)[0])
    recipe: dict[str, Any] = {}
    exec(compile(code, "docs/testing.md", "exec"), recipe)  # noqa: S102 - our own documentation
    recipe["test_inbox_watcher"](emulator, "cloudflare_queues_default")
    # the test stopped after the event, before asking for the next: the batch was given back, nothing acked
    assert sorted(state for state, _ in states(emulator).values()) == ["delayed"] * 3


def test_a_group_that_stops_gives_back_what_it_had_not_resolved(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook
) -> None:
    inbox.push_messages(["in flight"])

    async def go() -> QueueLoop:
        loop, tap, spec = await open_loop(trigger())
        await batches(tap)
        loop.leave(spec.key)
        tap.close()  # the group stopped (its watchers unsubscribed) before Airflow resolved the batch
        await asyncio.gather(*loop._settling, *loop.directory.closing)
        return loop

    loop = asyncio.run(go())
    assert loop.in_flight == 0 and not loop.batches
    assert states(emulator) == {"in flight": ("delayed", 1)}  # given back with the backoff, not left leased


def test_a_loop_closes_once_however_often_its_last_member_leaves(
    emulator: CloudflareQueuesEmulator, inbox: CloudflareQueuesHook
) -> None:
    async def go() -> QueueLoop:
        loop, tap, spec = await open_loop(trigger())
        loop.leave(spec.key)
        tap.close()
        closing = loop._closing
        tap.close()  # Airflow's aclose() after open_stream's own finally
        loop.leave(spec.key)
        assert loop._closing is closing and len(loop.directory.closing) == 1
        await loop.wait_closed()
        return loop

    loop = asyncio.run(go())
    assert loop.directory.loops == {} and not loop.directory.closing
