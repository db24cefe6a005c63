"""
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
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from ..api.errors import CloudflareQueuesValidationError
from ..api.models import PulledMessage
from .attempts import DEFAULT_BACKOFF, MessageRetryDelay
from .fate import Action

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
