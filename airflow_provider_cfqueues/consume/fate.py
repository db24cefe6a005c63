"""
What becomes of a pulled message: one vocabulary (:class:`Action`, :class:`Fate`), the drain's and the
message stream's decision tables side by side over it, and the one flow that carries a batch's
decisions out (:func:`give_back`). Pure: no I/O, no threads, no clock reads, nothing from Airflow; the
drain (:mod:`.drain`) and the stream's queue loop (``triggers/queue_loop.py``) run it.

The drain's rules
=================

The drain's decision for one message.

:meth:`DrainPolicy.decide` takes what the drain knows of one delivery (:class:`Delivery`) and what
happened to it (:class:`Outcome`), and returns a :class:`Decision`: ack, retry after N s, hold,
release, route to poison, or process. :meth:`DrainPolicy.settle` then decides, when a batch is
sent, whether a retry goes out now or is held until the run ends; :func:`batch_failures` reads what
a batch ``process`` reported. The drain engine
(:mod:`.drain`) carries the decisions out; ``tests/consume/test_drain_rules.py`` is its table.

The rules, one line each:

============================  =====================================================================
outcome                       decision
============================  =====================================================================
pulled, failed earlier in     HOLD: keep the lease until the run ends, then give it back with its
this run, deliveries left     retry delay (``process`` sees a message at most once per run)
pulled, over the poison       POISON: route it without processing (it arrived with more attempts
limit                         than ``max_attempts``)
pulled, otherwise             PROCESS
no time left (or stopping)    RELEASE now (delay 0; after its retry delay once the breaker
                              tripped), unless it is on its last delivery: PROCESS it anyway,
                              giving it back would end it too
succeeded                     ACK; resets the breaker
failed, poison limit reached  POISON (counts as handled, not as a failure)
rejected (``RejectMessage``)  POISON at once, with its reason, whatever deliveries it has left (the
                              drain routes it to ``on_poison`` or the consumer's dead-letter queue,
                              and refuses it when there is neither)
failed, last delivery         RETRY without delay: the service dead-letters or deletes it now
failed, deliveries left       RETRY after the message retry delay
routing to poison failed      RETRY as a failure (the service's budget still applies)
============================  =====================================================================

The circuit breaker protects delivery attempts during an outage of what ``process`` needs: only a
failure on a message's **first** delivery counts towards ``max_consecutive_failures``. A message
that fails again on a later delivery is a poison suspect: the consumer's ``max_retries`` and
dead-letter queue (or the poison route) end it, and it neither trips nor resets the breaker.

The message stream's rules
==========================

What a shared message stream does with each message once Airflow has resolved it (pure logic).

On Airflow 3.3+ the message trigger runs on a *shared stream*: one pull loop per queue in a
triggerer (:mod:`~airflow_provider_cfqueues.triggers.queue_loop`), each batch of messages broadcast
to every watcher of the queue, and settled once every group of watchers has resolved it. The loop
knows whether Airflow failed the batch for some watcher (an event not confirmed stored), which
watchers saw it and which messages they took; :func:`resolve_batch` turns that into one resolution
per message and :func:`settle` into one action per message; the loop carries the actions out in one
request.

=========================  ===========================================================================
counts                     action
=========================  ===========================================================================
``failed`` > 0             give the lease back with the provider's backoff (an event may not be
                           stored: the message must come again; the delay slows the attempts a
                           struggling metadata database would otherwise burn)
``acked`` > 0              ack: at least one watcher stored an asset event with it (the others
                           did not want it, which they may)
only ``rejected``          as ``on_rejected`` says: ``"retry"`` gives it back after
                           ``message_retry_delay``; ``"dead_letter"`` gives it back at once, every
                           time, so that it runs out of deliveries and the consumer's dead-letter
                           queue takes it; ``"poison"`` pushes it to the poison queue, then acks it
all zero                   give it back at once: no watcher was subscribed to see it
=========================  ===========================================================================

Giving a batch back
===================

Giving a batch back, written once for the drain's threads and the message stream's event loop.

:func:`give_back` is a generator ("flow", as in :mod:`..api.flows`): it yields :class:`RoutePoison`
(route these messages as poison) and then :class:`SendAcks` (one ack request), and receives what each
did. Between the two it decides: a routed message is acked; one whose routing failed is given back
with the delay the caller's rules give it, or kept (held) when they say so. :func:`run_sync` and
:func:`run_async` drive it with the caller's own routing and ack calls; they differ only in ``await``.

Routing never loses a message: a copy the poison queue did not confirm is not acked, so the original
comes again (partial pushes are known message by message, :mod:`.poison`).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Collection, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..api.errors import CloudflareQueuesValidationError
from ..api.models import AckResult, PulledMessage
from .attempts import DEFAULT_BACKOFF, AttemptBudget, MessageRetryDelay
from .poison import Rejected


class Action(str, enum.Enum):
    """What to do with one delivery (a ``str``: ``Action.ACK == "ack"``)."""

    PROCESS = "process"  #: hand it to ``process`` (the drain only)
    ACK = "ack"  #: acknowledge it: it is done
    RETRY = "retry"  #: give it back with a delay; the drain counts it as a failure
    HOLD = "hold"  #: keep its lease until the run ends, then give it back (the drain only)
    RELEASE = "release"  #: give it back unprocessed (the drain only)
    POISON = "poison"  #: push a copy to a poison queue (or hand it to ``on_poison``), then ack it


class Fate(enum.Enum):
    """What the service does with a message given back."""

    COMES_BACK = "comes back"
    DEAD_LETTERED = "dead-lettered"
    DELETED = "deleted"


# -- the drain's rules ------------------------------------------------------------------------------


class Breaker(enum.Enum):
    """What a decision does to the run of consecutive failures."""

    NEUTRAL = 0
    COUNTS = 1
    RESETS = 2


@dataclass(frozen=True)
class Delivery:
    """
    What the drain knows of one delivery when it decides.

    :param message_id: the message id.
    :param attempts: deliveries so far, this one included.
    :param failed_earlier: ``process`` failed for this message earlier in this run.
    """

    message_id: str
    attempts: int
    failed_earlier: bool = False


@dataclass(frozen=True)
class Outcome:
    """
    What happened to a delivery: use the constants and constructors below.

    :param kind: ``pulled``, ``succeeded``, ``failed``, ``rejected``, ``unprocessed`` or ``routing_failed``.
    :param detail: the error (failed, routing_failed), the reason (rejected) or why it was not processed
        (unprocessed).
    :param breaker_tripped: (unprocessed) the run's breaker has tripped: the release waits for the
        message retry delay instead of coming back at once.
    """

    kind: str
    detail: str = ""
    breaker_tripped: bool = False

    @staticmethod
    def failed(error: str) -> Outcome:
        return Outcome("failed", error)

    @staticmethod
    def rejected(reason: str) -> Outcome:
        return Outcome("rejected", reason)

    @staticmethod
    def unprocessed(why: str, *, breaker_tripped: bool = False) -> Outcome:
        return Outcome("unprocessed", why, breaker_tripped)

    @staticmethod
    def routing_failed(error: str) -> Outcome:
        return Outcome("routing_failed", error)


PULLED = Outcome("pulled")
SUCCEEDED = Outcome("succeeded")
REPORTED_FAILED = Outcome.failed("reported as failed by process()")


@dataclass(frozen=True)
class Decision:
    """
    What to do with one delivery, and what to log.

    :param action: the action.
    :param delay: for RETRY, RELEASE and HOLD: the delay to give it back with (``None``: the
        consumer's ``retry_delay``).
    :param fate: for RETRY: what the service does next.
    :param breaker: what this does to the run of consecutive failures.
    :param level: the log level of ``log`` (``logging.ERROR``...).
    :param log: the log line, or ``""``.
    :param error: for RETRY: the error that failed the message; for POISON: why it is routed (the
        poison envelope's ``reason``).
    :param rejected: for POISON: ``process`` rejected the message (:class:`~..api.poison.RejectMessage`).
    """

    action: Action
    delay: int | None = None
    fate: Fate | None = None
    breaker: Breaker = Breaker.NEUTRAL
    level: int = logging.INFO
    log: str = ""
    error: str = ""
    rejected: bool = False

    @property
    def is_failure(self) -> bool:
        """The message failed this run (it is counted in ``failed``)."""
        return self.action is Action.RETRY


@dataclass(frozen=True)
class DrainPolicy:
    """
    The per-message rules of one drain run.

    :param budget: the consumer's delivery budget.
    :param message_retry_delay: the message retry delay.
    :param poison_limit: with a poison route, the delivery whose failure routes the message; ``None``
        without one.
    :param safety_margin: seconds kept free at the end of a lease for the ack request.
    """

    budget: AttemptBudget
    message_retry_delay: MessageRetryDelay
    poison_limit: int | None = None
    safety_margin: float = 1.0

    def decide(self, delivery: Delivery, outcome: Outcome) -> Decision:
        """The decision for ``delivery`` after ``outcome`` (see the module's table)."""
        last = self.budget.is_last_delivery(delivery.attempts)
        if outcome is PULLED:
            if delivery.failed_earlier and not last:
                return Decision(Action.HOLD, self._delay(delivery))
            if self.poison_limit is not None and delivery.attempts > self.poison_limit:
                return self._poison(delivery, "")
            return Decision(Action.PROCESS)
        if outcome is SUCCEEDED:
            return Decision(Action.ACK, breaker=Breaker.RESETS)
        if outcome.kind == "unprocessed":
            if last:
                return Decision(
                    Action.PROCESS,
                    level=logging.WARNING,
                    log=f"processing message {delivery.message_id} on its last delivery although "
                    f"{outcome.detail}: giving it back would end it too",
                )
            return Decision(Action.RELEASE, self._delay(delivery) if outcome.breaker_tripped else 0)
        if outcome.kind == "rejected":
            return Decision(
                Action.POISON,
                level=logging.WARNING,
                log=f"process() rejected message {delivery.message_id} on delivery {delivery.attempts} "
                f"({outcome.detail}): routed as poison at once and acked",
                error=f"rejected by process(): {outcome.detail}",
                rejected=True,
            )
        if outcome.kind == "failed" and self.poison_limit is not None and delivery.attempts >= self.poison_limit:
            return self._poison(delivery, outcome.detail)
        if outcome.kind in ("failed", "routing_failed"):
            return self._retry(delivery, outcome.detail)
        raise ValueError(f"unknown outcome {outcome!r}")

    def settle(self, decision: Decision, delivery: Delivery, seconds_left: float, *, stopping: bool) -> Decision:
        """
        When a batch is sent: a retry whose wait ends before the message's lease would is held until
        the run ends instead (its lease kept, so that this run does not pull it again and spend another
        attempt), unless the run is stopping or this was the message's last delivery.
        """
        if decision.action is not Action.RETRY or stopping or decision.fate is not Fate.COMES_BACK:
            return decision
        if self.message_retry_delay.wait(delivery.attempts, self.budget) < seconds_left - self.safety_margin:
            return Decision(Action.HOLD, decision.delay, Fate.COMES_BACK)
        return decision

    def _delay(self, delivery: Delivery) -> int | None:
        return self.message_retry_delay.seconds(delivery.attempts)

    def _retry(self, delivery: Delivery, error: str) -> Decision:
        budget = self.budget
        breaker = Breaker.COUNTS if delivery.attempts <= 1 else Breaker.NEUTRAL
        attempt = f"attempt {delivery.attempts} of {budget.deliveries}"
        cause = f"process() failed for message {delivery.message_id} ({attempt}): {error}"
        if budget.is_last_delivery(delivery.attempts):
            fate = Fate.DEAD_LETTERED if budget.dead_letter_queue else Fate.DELETED
            return Decision(
                Action.RETRY,
                None,
                fate,
                breaker,
                logging.ERROR,
                f"{cause}; that was its last delivery: the service {budget.fate} now",
                error,
            )
        delay = self._delay(delivery)
        when = "after the consumer's retry_delay" if delay is None else f"in {delay:g} s"
        left = budget.left_after(delivery.attempts)
        return Decision(
            Action.RETRY,
            delay,
            Fate.COMES_BACK,
            breaker,
            logging.ERROR,
            f"{cause}; it comes back {when} ({left} deliveries left)",
            error,
        )

    def _poison(self, delivery: Delivery, error: str) -> Decision:
        why = (
            f"process() failed on delivery {delivery.attempts} (max_attempts={self.poison_limit}): {error}"
            if error
            else f"it arrived on delivery {delivery.attempts}, past max_attempts={self.poison_limit}"
        )
        return Decision(
            Action.POISON,
            level=logging.WARNING,
            log=f"message {delivery.message_id} reached {delivery.attempts} attempt(s)"
            f"{f' (last error: {error})' if error else ''}: routed as poison and acked",
            error=why,
        )


class BatchResultError(CloudflareQueuesValidationError):
    """``process`` in batch mode reported failures that are not messages of its batch."""


def batch_failures(messages: Sequence[PulledMessage], returned: object) -> dict[str, Outcome]:
    """
    The outcome of each message a batch ``process`` reported as failed or rejected, by message id. It
    returns ``None`` (or an empty collection) when all succeeded, or a collection of the failed messages:
    the ``PulledMessage`` objects of this batch, or their ``id`` or ``lease_id`` strings, and
    :class:`~..api.poison.Rejected` items for messages it rejects. Anything else raises
    :class:`BatchResultError`, naming the items: nothing of the batch may be acked on a guess.
    """
    if returned is None:
        return {}
    if isinstance(returned, (str, bytes, dict, PulledMessage, Rejected)) or not isinstance(returned, Iterable):
        raise BatchResultError(
            f"in batch mode, process() returns None (all succeeded) or a collection of the failed messages "
            f"(PulledMessage objects of the batch, or their id or lease_id), got {_describe(returned)}"
        )
    by_key: dict[str, str] = {}
    for message in messages:
        by_key[message.id] = message.id
        by_key[message.lease_id] = message.id
    failed: dict[str, Outcome] = {}
    unmatched: list[object] = []
    for item in returned:
        outcome = Outcome.rejected(item.reason) if isinstance(item, Rejected) else REPORTED_FAILED
        target = item.message if isinstance(item, Rejected) else item
        key = target.lease_id if isinstance(target, PulledMessage) else target
        message_id = by_key.get(key) if isinstance(key, str) else None
        if message_id is None:
            unmatched.append(item)
        else:
            failed[message_id] = outcome
    if unmatched:
        shown = ", ".join(_describe(item) for item in unmatched[:5])
        raise BatchResultError(
            f"process() reported {len(unmatched)} failure(s) that are not messages of this batch: {shown}"
            f"{', ...' if len(unmatched) > 5 else ''}. Return the failed PulledMessage objects, or their id "
            "or lease_id (in Rejected(...) to reject them). No message of this batch was acked: all of them are retried"
        )
    return failed


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"


# -- the message stream's rules ---------------------------------------------------------------------


#: the ``ack`` modes of the message trigger, in the order the docs explain them
ACK_MODES = ("persisted", "dag", "emitted")
#: what a shared stream does with a message no watcher wanted
ON_REJECTED = ("retry", "dead_letter", "poison")
#: Airflow's ``[triggerer] shared_stream_ack_timeout`` default
DEFAULT_ACK_TIMEOUT = 300.0
#: Airflow checks for overdue events ten times per ack timeout, so one may be failed this much late
ACK_TIMEOUT_SCAN_SHARE = 0.1
#: what the lease must outlast beyond the ack window: the advance's ack request and its retries
LEASE_MARGIN_SECONDS = 60.0


def minimum_lease_seconds(ack_timeout: float) -> float:
    """The shortest ``visibility_timeout`` that outlasts Airflow's ack window plus the advance."""
    return ack_timeout * (1 + ACK_TIMEOUT_SCAN_SHARE) + LEASE_MARGIN_SECONDS


def check_lease_outlasts_ack_window(visibility_timeout: float, ack_timeout: float) -> None:
    """
    Refuse a lease shorter than the ack window: a message whose lease ran out before Airflow resolved
    it is delivered again while its first event may still be stored (a duplicate for certain) and its
    ack fails.
    """
    needed = minimum_lease_seconds(ack_timeout)
    if visibility_timeout < needed:
        raise CloudflareQueuesValidationError(
            f"visibility_timeout={visibility_timeout:g} s is shorter than the ack window: [triggerer] "
            f"shared_stream_ack_timeout={ack_timeout:g} s, plus a tenth for Airflow's timeout scan and "
            f"{LEASE_MARGIN_SECONDS:g} s for the ack itself, needs at least {needed:g} s. Raise "
            "visibility_timeout (at most 43,200 s) or lower shared_stream_ack_timeout"
        )


@dataclass(frozen=True)
class Resolution:
    """
    How the watchers of a shared stream resolved one message (Airflow's ``AdvanceOutcome``).

    :param acked: watchers whose asset events of the message were stored (or that skipped it).
    :param failed: watchers Airflow failed on it (ack timeout, a full queue).
    :param rejected: watchers whose filter did not want it.
    """

    acked: int = 0
    failed: int = 0
    rejected: int = 0


def resolve_batch(
    message_ids: Sequence[str], *, failed: bool, everyone_saw: bool, taken: Collection[str]
) -> list[Resolution]:
    """
    One resolution per message of a batch: after a failure every message is given back with the
    backoff (an event may not be stored); a message some watcher took is acked (its event was
    stored); one that every watcher of the batch saw and none took is rejected; one that a watcher
    never saw (it left first) is given back at once: nobody can say it was unwanted.
    """
    if failed:
        return [Resolution(failed=1)] * len(message_ids)
    return [
        Resolution(acked=1) if m in taken else Resolution(rejected=1) if everyone_saw else Resolution()
        for m in message_ids
    ]


@dataclass(frozen=True)
class Settlement:
    """
    One message's action: ``ack``, ``retry`` after ``delay`` seconds, or route it as ``poison``.

    :param action: what to do.
    :param delay: seconds before a retried message comes back (``None``: the consumer's retry_delay).
    :param reason: why, in words, for the log.
    """

    action: Action
    delay: int | None = None
    reason: str = ""


def settle(
    resolution: Resolution, attempts: int, on_rejected: str, message_retry_delay: MessageRetryDelay
) -> Settlement:
    """The action for one message of ``attempts`` deliveries, resolved as ``resolution``."""
    if resolution.failed:
        return Settlement(Action.RETRY, DEFAULT_BACKOFF.seconds(attempts), "its asset event may not have been stored")
    if resolution.acked:
        return Settlement(Action.ACK, reason="stored")
    if resolution.rejected:
        if on_rejected == "poison":
            return Settlement(Action.POISON, reason="no watcher of the queue wanted it (on_rejected='poison')")
        if on_rejected == "dead_letter":
            return Settlement(Action.RETRY, 0, "no watcher wanted it: on its way to the dead-letter queue")
        return Settlement(Action.RETRY, message_retry_delay.seconds(attempts), "no watcher wanted it")
    return Settlement(Action.RETRY, 0, "no watcher was subscribed")


@dataclass
class AdvancePlan:
    """
    The actions for one advance batch, grouped for one ack request (and one push of poison).

    :param acks: messages to ack.
    :param retries: messages to give back, with their delays.
    :param poison: messages to push to the poison queue and then ack, with why.
    :param reasons: how many messages got each (action, reason), for the log.
    """

    acks: list[PulledMessage] = field(default_factory=list)
    retries: list[tuple[PulledMessage, int | None]] = field(default_factory=list)
    poison: list[tuple[PulledMessage, str]] = field(default_factory=list)
    reasons: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, message: PulledMessage, settlement: Settlement) -> None:
        if settlement.action is Action.ACK:
            self.acks.append(message)
        elif settlement.action is Action.POISON:
            self.poison.append((message, settlement.reason))
        else:
            self.retries.append((message, settlement.delay))
        key = (settlement.action.value, settlement.reason)
        self.reasons[key] = self.reasons.get(key, 0) + 1

    def describe(self) -> str:
        """``3 ack (stored), 1 retry (no watcher wanted it)``."""
        return ", ".join(f"{n} {action} ({reason})" for (action, reason), n in sorted(self.reasons.items()))


def plan_advance(
    items: Iterable[tuple[PulledMessage, Resolution]], on_rejected: str, message_retry_delay: MessageRetryDelay
) -> AdvancePlan:
    """The actions for a batch of resolved messages."""
    plan = AdvancePlan()
    for message, resolution in items:
        plan.add(message, settle(resolution, message.attempts, on_rejected, message_retry_delay))
    return plan


# -- giving a batch back ----------------------------------------------------------------------------


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
