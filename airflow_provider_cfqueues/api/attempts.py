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

from .models import Queue
from .units import delay_seconds

#: Cloudflare's default ``max_retries`` for a consumer that does not set it.
DEFAULT_MAX_RETRIES = 3

#: The provider's retry backoff: seconds before attempt 1 comes back, doubling per attempt, capped.
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3_600


@dataclass(frozen=True)
class ExponentialBackoff:
    """
    A ``retry_delay``: ``base`` seconds after a message's first delivery failed, doubling with each
    further attempt, at most ``cap`` seconds; whole seconds, as Cloudflare takes them. The default
    (30 s, 60 s, 120 s, 240 s, ... up to one hour) is what ``retry_delay=None`` means.

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

    def __call__(self, attempts: int) -> int:
        """The delay in seconds after the delivery numbered ``attempts`` failed."""
        exponent: int = min(max(attempts, 1) - 1, 32)
        return min(self.cap, self.base * (1 << exponent))


DEFAULT_BACKOFF = ExponentialBackoff()


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


#: ``retry_delay="consumer"``: send no delay, so that the consumer's own ``retry_delay`` applies.
CONSUMER_RETRY_DELAY = "consumer"


def resolve_retry_delay(value: object, name: str = "retry_delay") -> int | Callable[[int], float | None] | None:
    """
    A user's ``retry_delay`` as the drain uses it: ``None`` is :data:`DEFAULT_BACKOFF`; ``"consumer"``
    is ``None`` (no delay sent: the consumer's applies); a callable of the attempt count is kept; a
    number of seconds or a ``timedelta`` is validated.
    """
    if value is None:
        return DEFAULT_BACKOFF
    if value == CONSUMER_RETRY_DELAY:
        return None
    if callable(value):
        return value
    return delay_seconds(value, name)
