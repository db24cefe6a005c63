"""
Delivery attempts: how many a message has left, and how long a failed one waits before it comes back.

Cloudflare counts every delivery of a message (a pull), and a message whose delivery fails (a retry,
a release, or a lease that expired) after ``max_retries + 1`` deliveries is moved to the consumer's
dead-letter queue, or deleted when it has none. Pure functions and values only: the drain loop, the
operators and the docs all use these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..api.models import Queue
from ..api.units import delay_seconds

#: Cloudflare's default ``max_retries`` for a consumer that does not set it.
DEFAULT_MAX_RETRIES = 3

#: The provider's retry backoff: seconds before attempt 1 comes back, doubling per attempt, capped.
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3_600
#: ``message_retry_delay="consumer"``: send no delay, so that the consumer's own ``retry_delay`` applies.
CONSUMER_RETRY_DELAY = "consumer"
#: how many retry delays a log line lists before "..."
DELAYS_SHOWN = 4


class MessageRetryDelay:
    """
    How long a failed message waits before it comes back, resolved once from the user's
    ``message_retry_delay`` (:func:`resolve_message_retry_delay`) and used by every layer: the drain, the Ack
    operator, the logs. :meth:`seconds` is what goes with a retry; ``None`` there means one thing
    only: send no delay, so that the consumer's ``retry_delay`` applies.
    """

    def seconds(self, attempts: int) -> int | None:
        """The delay to send with the retry of the delivery numbered ``attempts`` (``None``: the consumer's)."""
        raise NotImplementedError

    def wait(self, attempts: int, budget: AttemptBudget) -> float:
        """How long the message will actually wait after that retry."""
        sent = self.seconds(attempts)
        return budget.retry_delay if sent is None else sent

    def describe(self, budget: AttemptBudget) -> str:
        """The delays of the retries ``budget`` allows, in words (``30 s, 60 s``)."""
        if budget.max_retries == 0:
            return "never: the consumer allows no retries"
        shown = range(1, min(budget.max_retries, DELAYS_SHOWN) + 1)
        steps = ", ".join(f"{self.wait(n, budget):g} s" for n in shown)
        return steps + (", ..." if budget.max_retries > DELAYS_SHOWN else "")


@dataclass(frozen=True)
class ExponentialBackoff(MessageRetryDelay):
    """
    A ``message_retry_delay``: ``base`` seconds after a message's first delivery failed, doubling with
    each further attempt, at most ``cap`` seconds; whole seconds, as Cloudflare takes them. The
    default (30 s, 60 s, 120 s, 240 s, ... up to one hour) is what ``message_retry_delay=None`` means.

    :param base: seconds before a message that failed on its first delivery comes back.
    :param cap: the longest delay in seconds.
    """

    base: int = BACKOFF_BASE_SECONDS
    cap: int = BACKOFF_CAP_SECONDS

    def __post_init__(self) -> None:
        if isinstance(self.base, bool) or not isinstance(self.base, int) or self.base < 0:
            raise ValueError(f"base must be a whole number of seconds >= 0, got {self.base!r}")
        if isinstance(self.cap, bool) or not isinstance(self.cap, int) or self.cap < self.base:
            raise ValueError(f"cap must be a whole number of seconds >= base, got {self.cap!r}")

    def seconds(self, attempts: int) -> int:
        exponent: int = min(max(attempts, 1) - 1, 32)
        return min(self.cap, self.base * (1 << exponent))


DEFAULT_BACKOFF = ExponentialBackoff()


@dataclass(frozen=True)
class FixedDelay(MessageRetryDelay):
    """
    The same delay after every failed delivery.

    :param delay: whole seconds (0: at once).
    """

    delay: int

    def seconds(self, attempts: int) -> int:
        return self.delay


@dataclass(frozen=True)
class ConsumerDelay(MessageRetryDelay):
    """No delay sent: the consumer's own ``retry_delay`` applies (``message_retry_delay="consumer"``)."""

    def seconds(self, attempts: int) -> None:
        return None

    def describe(self, budget: AttemptBudget) -> str:
        if budget.max_retries == 0:
            return super().describe(budget)
        return f"the consumer's retry_delay ({budget.retry_delay:g} s)"


@dataclass(frozen=True)
class CallableDelay(MessageRetryDelay):
    """
    The user's function of the attempt count; what it returns is read like any delay (seconds or a
    ``timedelta``, whole seconds, 0 to 24 hours; ``None`` for the consumer's) and refused otherwise.

    :param function: called with the number of the delivery that failed.
    """

    function: Callable[[int], object]

    def seconds(self, attempts: int) -> int | None:
        return delay_seconds(self.function(attempts), f"message_retry_delay({attempts})")

    def describe(self, budget: AttemptBudget) -> str:
        try:
            return f"{super().describe(budget)} ({self.function!r})"
        except Exception:  # the user's function: it fails the run when a message needs it, not here
            return repr(self.function)


@dataclass(frozen=True)
class AttemptBudget:
    """
    A consumer's delivery budget, read once per run from the queue's HTTP pull consumer.

    :param max_retries: retries the consumer allows; a message is delivered at most
        ``max_retries + 1`` times.
    :param retry_delay: the consumer's default retry delay in seconds (also applied when a lease
        expires).
    :param dead_letter_queue: where exhausted messages go; ``None`` when they are deleted.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    retry_delay: float = 0.0
    dead_letter_queue: str | None = None

    @classmethod
    def of(cls, queue: Queue) -> AttemptBudget:
        """The budget of ``queue``'s HTTP pull consumer (the service's defaults where it sets none)."""
        consumer = queue.http_pull_consumer
        if consumer is None:
            return cls()
        settings = consumer.settings
        return cls(
            max_retries=DEFAULT_MAX_RETRIES if settings.max_retries is None else int(settings.max_retries),
            retry_delay=float(settings.retry_delay or 0),
            dead_letter_queue=consumer.dead_letter_queue or None,
        )

    @property
    def deliveries(self) -> int:
        """How many times the service delivers a message before it gives up on it."""
        return self.max_retries + 1

    def is_last_delivery(self, attempts: int) -> bool:
        """Whether a failure of this delivery ends the message's life in this queue."""
        return attempts >= self.deliveries

    def left_after(self, attempts: int) -> int:
        """Deliveries left once the delivery numbered ``attempts`` has failed."""
        return max(0, self.deliveries - attempts)

    @property
    def fate(self) -> str:
        """What the service does with a message whose last delivery fails, in words."""
        if self.dead_letter_queue:
            return f"moves it to the dead-letter queue {self.dead_letter_queue!r}"
        return "deletes it (the consumer has no dead-letter queue)"


def resolve_message_retry_delay(value: object, name: str = "message_retry_delay") -> MessageRetryDelay:
    """
    A user's ``message_retry_delay`` as one typed value: ``None`` is :data:`DEFAULT_BACKOFF`;
    ``"consumer"`` is :class:`ConsumerDelay`; a :class:`MessageRetryDelay` is kept; another callable
    of the attempt count is a :class:`CallableDelay`; seconds or a ``timedelta`` are a
    :class:`FixedDelay`, validated here.
    """
    if value is None:
        return DEFAULT_BACKOFF
    if isinstance(value, MessageRetryDelay):
        return value
    if value == CONSUMER_RETRY_DELAY:
        return ConsumerDelay()
    if callable(value):
        return CallableDelay(value)
    seconds = delay_seconds(value, name)
    if seconds is None:  # an empty templated string
        return DEFAULT_BACKOFF
    return FixedDelay(seconds)
