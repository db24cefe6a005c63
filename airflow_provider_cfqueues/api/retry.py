"""
Retry decisions: which failures are retried, and how long to wait first.

Pure functions of (attempt, error, elapsed time, random source): the sync hook, the async hook and
the tests all use the same :class:`RetryPolicy`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from .errors import CloudflareQueuesApiError, CloudflareQueuesError


@dataclass(frozen=True)
class RetryPolicy:
    """
    Exponential backoff with full jitter, bounded in attempts and in total time.

    Retried: connection errors, timeouts and cut-off answers, HTTP 429 and Cloudflare's 429-class
    codes (10250-10253), and 5xx. Never retried: authentication, not-found and validation errors.

    :param max_attempts: attempts per request, the first one included (1 disables retries).
    :param initial_backoff: the first backoff ceiling in seconds; doubles after each attempt.
    :param max_backoff: the largest backoff ceiling in seconds.
    :param total_timeout: give up when the next backoff would start later than this many seconds
        after the first attempt (a wait the service asked for with ``Retry-After`` is bounded by
        ``max_retry_wait`` instead).
    :param max_retry_wait: the longest ``Retry-After`` waited for, in seconds (default 300: Cloudflare
        blocks a token that goes over its budget for up to 5 minutes); a longer one raises instead.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 20.0
    total_timeout: float = 120.0
    max_retry_wait: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.initial_backoff, self.max_backoff, self.total_timeout, self.max_retry_wait) < 0:
            raise ValueError("backoff and timeout values must not be negative")

    def backoff(self, attempt: int) -> float:
        """The jittered backoff after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        return self.rng.uniform(0, ceiling)

    def next_delay(self, attempt: int, error: CloudflareQueuesError, elapsed: float) -> float | None:
        """
        Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up and raise ``error``.

        :param attempt: how many attempts were made (1 after the first failure).
        :param error: why the last attempt failed.
        :param elapsed: seconds since the first attempt started.
        """
        if not error.retryable or attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt)
        retry_after = error.retry_after if isinstance(error, CloudflareQueuesApiError) else None
        if retry_after is not None:
            if retry_after > self.max_retry_wait:
                return None
            return max(delay, retry_after)
        if elapsed + delay > self.total_timeout:
            return None
        return delay


NO_RETRIES = RetryPolicy(max_attempts=1)


def http_date(value: str | None) -> datetime | None:
    """An HTTP date (``Date``, ``Retry-After``) as an aware UTC datetime; ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """
    Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date. ``None`` when
    absent or unreadable; never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        when = http_date(value)
        if when is None:
            return None
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
