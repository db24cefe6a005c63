"""
The drain's decision for one message, as a pure function: no I/O, no threads, no clock reads.

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
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..api.errors import CloudflareQueuesValidationError
from ..api.models import PulledMessage
from .attempts import AttemptBudget, MessageRetryDelay
from .fate import Action, Fate
from .poison import Rejected


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
