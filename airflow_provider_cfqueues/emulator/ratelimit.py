"""
Cloudflare's API budget, modelled (opt-in): each user may make ``quota`` requests per ``window``
seconds (1,200 per 300 s on the service), counted across all of the user's tokens; the emulator's
user is the account, so all tokens of an account share one budget. Pulls and acks are exempt (since
2025-04-17); going over blocks *every* call for a whole window, answered with 429 and ``Retry-After``. Every
answer carries the ``Ratelimit`` and ``Ratelimit-Policy`` headers the service sends. Optionally,
each queue also takes at most ``queue_throughput`` messages per second (5,000 on the service),
pushed or pulled. Time comes from the emulator's clock, so tests can step through a window.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field

#: endpoints that do not count against the token's budget (shared/reference §4, §11)
EXEMPT = frozenset({"pull", "ack"})
#: the service's budget
CLOUDFLARE_BUDGET = "1200/300"


@dataclass(frozen=True)
class Verdict:
    """What the budget says about one request: headers to send, and when refused, the wait."""

    headers: list[tuple[str, str]]
    retry_after: int | None = None


def parse_budget(spec: str) -> tuple[int, float]:
    """``"1200/300"`` -> ``(1200, 300.0)``: requests per seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*", spec)
    if match is None or int(match[1]) < 1 or float(match[2]) <= 0:
        raise ValueError(f"a rate limit is REQUESTS/SECONDS with both positive, e.g. {CLOUDFLARE_BUDGET}; got {spec!r}")
    return int(match[1]), float(match[2])


@dataclass
class _TokenWindow:
    sent: deque[float] = field(default_factory=deque)  # when each counted request of the window arrived
    blocked_until: float = 0.0


class TokenBudget:
    """
    The per-token request budget (a sliding window).

    :param quota: counted requests allowed per window.
    :param window: the window in seconds; also how long a token is blocked once it goes over.
    """

    def __init__(self, quota: int, window: float) -> None:
        self.quota = quota
        self.window = window
        self._tokens: dict[str, _TokenWindow] = {}
        self._lock = threading.Lock()
        self.refused = 0

    @classmethod
    def from_spec(cls, spec: str) -> TokenBudget:
        return cls(*parse_budget(spec))

    def check(self, owner: str, endpoint: str, now: float) -> Verdict:
        """Count one request of ``owner`` (the account: every token of it) at ``now``; refuse it when the
        owner is blocked or over budget."""
        with self._lock:
            state = self._tokens.setdefault(owner, _TokenWindow())
            while state.sent and state.sent[0] <= now - self.window:
                state.sent.popleft()
            if now < state.blocked_until:
                self.refused += 1
                return self._verdict(state, now, retry_after=state.blocked_until - now)
            if endpoint not in EXEMPT:
                if len(state.sent) >= self.quota:
                    state.blocked_until = now + self.window  # "all API calls for the next five minutes"
                    self.refused += 1
                    return self._verdict(state, now, retry_after=self.window)
                state.sent.append(now)
            return self._verdict(state, now)

    def _verdict(self, state: _TokenWindow, now: float, retry_after: float | None = None) -> Verdict:
        remaining = 0 if now < state.blocked_until else self.quota - len(state.sent)
        if now < state.blocked_until:
            reset = state.blocked_until - now
        elif state.sent:
            reset = state.sent[0] + self.window - now
        else:
            reset = 0.0
        headers = [
            ("Ratelimit", f'"default";r={max(0, remaining)};t={math.ceil(max(0.0, reset))}'),
            ("Ratelimit-Policy", f'"default";q={self.quota};w={math.ceil(self.window)}'),
        ]
        if retry_after is None:
            return Verdict(headers)
        seconds = max(1, math.ceil(retry_after))
        return Verdict([*headers, ("Retry-After", str(seconds))], retry_after=seconds)


class QueueThroughput:
    """
    At most ``per_second`` messages per queue and second, pushed or pulled (a token bucket that
    holds one second's worth).
    """

    def __init__(self, per_second: int) -> None:
        if per_second < 1:
            raise ValueError(f"queue_throughput must be at least 1 message per second, got {per_second}")
        self.per_second = per_second
        self._buckets: dict[str, tuple[float, float]] = {}  # queue id -> (tokens, as of when)
        self._lock = threading.Lock()

    def take(self, queue_id: str, wanted: int, now: float, *, partial: bool) -> int:
        """Take up to ``wanted`` messages' worth; all or nothing unless ``partial``. Returns what was granted."""
        with self._lock:
            tokens, since = self._buckets.get(queue_id, (float(self.per_second), now))
            tokens = min(float(self.per_second), tokens + (now - since) * self.per_second)
            granted = min(wanted, int(tokens)) if partial else (wanted if tokens >= wanted else 0)
            self._buckets[queue_id] = (tokens - granted, now)
            return granted

    def give_back(self, queue_id: str, unused: int) -> None:
        """Return what a pull was granted but did not deliver."""
        with self._lock:
            tokens, since = self._buckets[queue_id]
            self._buckets[queue_id] = (min(float(self.per_second), tokens + unused), since)


#: the plans the emulator models (``--plan``): what the Free plan limits
PLANS = ("paid", "free")
#: the Free plan's operations a day, and its longest message retention
FREE_OPERATIONS_PER_DAY = 10_000
FREE_MAX_RETENTION_SECONDS = 86_400
DAY = 86_400


class DailyOperations:
    """
    The Free plan's operations a day per account (every 64 KB of a message written, read or deleted is
    one; the requests spend them, :class:`~.app.Request`): a request that needs more than are left gets
    429 with code 10253 and a ``Retry-After`` until the next UTC day, and nothing of it is applied.

    :param limit: operations allowed per UTC day.
    """

    def __init__(self, limit: int = FREE_OPERATIONS_PER_DAY) -> None:
        self.limit = limit
        self._used: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def left(self, account: str, now: float) -> int:
        """The operations the account has left today (0 or fewer: none)."""
        with self._lock:
            return self.limit - self._used.get((account, int(now // DAY)), 0)

    def seconds_to_next_day(self, now: float) -> int:
        return math.ceil(DAY - now % DAY)

    def spend(self, account: str, operations: int, now: float) -> None:
        with self._lock:
            key = (account, int(now // DAY))
            self._used[key] = self._used.get(key, 0) + operations
