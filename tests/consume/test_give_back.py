"""The one give-back flow of the drain and the message stream: route poison, then one ack request."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_cfqueues.api.models import AckResult, PulledMessage
from airflow_provider_cfqueues.consume.fate import (
    GivenBack,
    RoutePoison,
    SendAcks,
    give_back,
    run_async,
    run_sync,
)


def message(n: int) -> PulledMessage:
    return PulledMessage(id=f"m{n}", lease_id=f"l{n}", attempts=n, content_type="text", raw_body="x")


ONE, TWO, THREE, FOUR = (message(n) for n in range(1, 5))


def test_poison_is_routed_first_and_what_was_routed_is_acked_in_the_one_request() -> None:
    flow = give_back([ONE], [(TWO, 30)], [(THREE, "bad"), (FOUR, "worse")], lambda m, e: (m, 60))
    route = next(flow)
    assert route == RoutePoison([(THREE, "bad"), (FOUR, "worse")])
    send = flow.send({"l4": "the poison queue said 503"})  # four was not routed
    assert send == SendAcks([ONE, THREE], [(TWO, 30), (FOUR, 60)])
    try:
        flow.send(AckResult(ack_count=2, retry_count=2))
    except StopIteration as finished:
        done: GivenBack = finished.value
    assert (done.routed, done.unrouted) == ([THREE], [(FOUR, "the poison queue said 503")])
    assert done.result.ack_count == 2


def test_an_unrouted_message_the_caller_keeps_is_neither_acked_nor_given_back() -> None:
    sent: list[Any] = []
    done = run_sync(
        give_back([], [], [(ONE, "bad")], lambda m, e: None),
        lambda poison: {"l1": "down"},
        lambda acks, retries: sent.append((acks, retries)) or AckResult(),
    )
    assert sent == [] and (done.acks, done.retries) == ([], [])  # nothing to send: no request


def test_the_sync_and_async_drivers_send_the_same_requests() -> None:
    def calls() -> tuple[list[Any], Any, Any, Any, Any]:
        log: list[Any] = []

        def route(poison: Sequence[tuple[PulledMessage, str]]) -> Mapping[str, str]:
            log.append(("route", [m.id for m, _ in poison]))
            return {}

        def ack(acks: Sequence[PulledMessage], retries: Sequence[Any]) -> AckResult:
            log.append(("ack", [m.id for m in acks], [(m.id, d) for m, d in retries]))
            return AckResult(ack_count=len(acks))

        async def aroute(poison: Sequence[tuple[PulledMessage, str]]) -> Mapping[str, str]:
            return route(poison)

        async def aack(acks: Sequence[PulledMessage], retries: Sequence[Any]) -> AckResult:
            return ack(acks, retries)

        return log, route, ack, aroute, aack

    sync_log, route, ack, _, _ = calls()
    run_sync(give_back([ONE], [(TWO, None)], [(THREE, "bad")], lambda m, e: (m, 0)), route, ack)
    async_log, _, _, aroute, aack = calls()
    asyncio.run(run_async(give_back([ONE], [(TWO, None)], [(THREE, "bad")], lambda m, e: (m, 0)), aroute, aack))
    assert sync_log == async_log == [("route", ["m3"]), ("ack", ["m1", "m3"], [("m2", None)])]
