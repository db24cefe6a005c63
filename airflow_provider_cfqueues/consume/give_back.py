"""
Giving a batch back, written once for the drain's threads and the message stream's event loop.

:func:`give_back` is a generator ("flow", as in :mod:`..api.flows`): it yields :class:`RoutePoison`
(route these messages as poison) and then :class:`SendAcks` (one ack request), and receives what each
did. Between the two it decides: a routed message is acked; one whose routing failed is given back
with the delay the caller's rules give it, or kept (held) when they say so. :func:`run_sync` and
:func:`run_async` drive it with the caller's own routing and ack calls; they differ only in ``await``.

Routing never loses a message: a copy the poison queue did not confirm is not acked, so the original
comes again (partial pushes are known message by message, :mod:`.poison_routes`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field

from ..api.models import AckResult, PulledMessage

#: one retry: the message and the delay it comes back after (``None``: the consumer's ``retry_delay``)
Retry = tuple[PulledMessage, "int | None"]
#: what the caller does with a message whose routing failed: the retry to send, or ``None`` to keep it
Unrouted = Callable[[PulledMessage, str], "Retry | None"]


@dataclass(frozen=True)
class RoutePoison:
    """
    Route these messages as poison. Answer: lease id -> why its routing failed, for each message that
    was not routed (an empty mapping: all were).

    :param poison: each message with the reason it is routed (the poison envelope's ``reason``).
    """

    poison: Sequence[tuple[PulledMessage, str]]


@dataclass(frozen=True)
class SendAcks:
    """Send one ack request. Answer: its :class:`AckResult` (an exception propagates to the caller)."""

    acks: Sequence[PulledMessage]
    retries: Sequence[Retry]


@dataclass
class GivenBack:
    """
    What a give-back sent.

    :param acks: the messages acked (the routed poison included).
    :param retries: the messages given back, with their delays (the unrouted poison included).
    :param routed: the poison messages routed (and acked).
    :param unrouted: the poison messages whose routing failed, with why.
    :param result: the ack request's answer (empty when nothing was sent).
    """

    acks: list[PulledMessage] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)
    routed: list[PulledMessage] = field(default_factory=list)
    unrouted: list[tuple[PulledMessage, str]] = field(default_factory=list)
    result: AckResult = field(default_factory=AckResult)


GiveBackFlow = Generator["RoutePoison | SendAcks", "Mapping[str, str] | AckResult", GivenBack]


def give_back(
    acks: Sequence[PulledMessage],
    retries: Sequence[Retry],
    poison: Sequence[tuple[PulledMessage, str]],
    unrouted: Unrouted,
) -> GiveBackFlow:
    """Route ``poison``, then ack ``acks`` and the routed, and give back ``retries`` and the unrouted."""
    done = GivenBack(acks=list(acks), retries=list(retries))
    if poison:
        failed = yield RoutePoison(poison)
        assert isinstance(failed, Mapping)
        for message, _ in poison:
            error = failed.get(message.lease_id)
            if error is None:
                done.routed.append(message)
                continue
            done.unrouted.append((message, error))
            retry = unrouted(message, error)
            if retry is not None:
                done.retries.append(retry)
        done.acks.extend(done.routed)
    if done.acks or done.retries:
        result = yield SendAcks(done.acks, done.retries)
        assert isinstance(result, AckResult)
        done.result = result
    return done


def run_sync(
    flow: GiveBackFlow,
    route: Callable[[Sequence[tuple[PulledMessage, str]]], Mapping[str, str]],
    ack: Callable[[Sequence[PulledMessage], Sequence[Retry]], AckResult],
) -> GivenBack:
    """Drive ``flow`` with blocking calls (the drain's worker threads)."""
    try:
        effect = next(flow)
        while True:
            answer = route(effect.poison) if isinstance(effect, RoutePoison) else ack(effect.acks, effect.retries)
            effect = flow.send(answer)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]


async def run_async(
    flow: GiveBackFlow,
    route: Callable[[Sequence[tuple[PulledMessage, str]]], Awaitable[Mapping[str, str]]],
    ack: Callable[[Sequence[PulledMessage], Sequence[Retry]], Awaitable[AckResult]],
) -> GivenBack:
    """Drive ``flow`` on an event loop (the message stream's queue loop)."""
    try:
        effect = next(flow)
        while True:
            if isinstance(effect, RoutePoison):
                answer: Mapping[str, str] | AckResult = await route(effect.poison)
            else:
                answer = await ack(effect.acks, effect.retries)
            effect = flow.send(answer)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
