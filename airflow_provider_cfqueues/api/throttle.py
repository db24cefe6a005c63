"""
The API budget as one process sees it, shared by everything in the process that uses it: the threads
of a drain, the triggers of a triggerer, the tasks of a worker process.

Cloudflare allows each *user* 1,200 requests per 5 minutes, counted across all of the user's tokens,
the dashboard and the API (pulls and acks exempt), and, past that, blocks *every* call for up to 5
minutes (HTTP 429 with ``Retry-After``). The client cannot see users; it keys the budget by API base
URL and account, which the tokens of one user usually share. So:

* after a 429 with ``Retry-After``, every request to the account waits until then, instead of each
  request discovering the block for itself (and prolonging it);
* the ``Ratelimit`` header of each answer (``"default";r=<remaining>;t=<seconds to reset>``) tells
  the remaining budget; when it runs low, counted requests are spread over the time left, so the
  budget lasts until it resets instead of running into a block.

No I/O and no sleeping here: :meth:`Throttle.wait_before` says how long to wait; the flows yield that
as a ``Sleep``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping

#: operations that do not count against the budget (pulls and acks, since 2025-04-17)
EXEMPT_OPERATIONS = frozenset({"pull", "ack"})
#: pace counted requests once fewer than this share of the quota is left
LOW_WATER = 0.1

_RATELIMIT = re.compile(r"r=(\d+)\s*;\s*t=(\d+)")
_POLICY = re.compile(r"q=(\d+)\s*;\s*w=(\d+)")


class Throttle:
    """
    The budget of one token at one API base URL, as the answers report it.

    :param clock: monotonic seconds (tests inject one).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.blocked_until = 0.0
        self.remaining: int | None = None  # counted requests left in this window, when known
        self.reset_at = 0.0
        self.quota: int | None = None
        self._next_slot = 0.0  # when paced, the earliest moment the next counted request may go

    def wait_before(self, operation: str, *, block_served: bool = False) -> float:
        """
        Seconds to wait before sending ``operation`` (0 when it may go now); reserves its budget.

        :param block_served: the caller has just waited out the block itself (it retried after the
            429 that set it), so only pacing applies.
        """
        with self._lock:
            now = self.clock()
            wait = 0.0 if block_served else max(0.0, self.blocked_until - now)
            if operation in EXEMPT_OPERATIONS or self.remaining is None:
                return wait
            if now >= self.reset_at:  # a new window: the whole quota again, as far as we know
                self.remaining, self._next_slot = None, 0.0
                return wait
            start = max(now + wait, self._next_slot)
            if self.remaining <= 0:
                start = max(start, self.reset_at)
            elif self.quota and self.remaining < max(1.0, LOW_WATER * self.quota):
                spacing = max(0.0, self.reset_at - start) / self.remaining
                self._next_slot = start + spacing
            self.remaining -= 1
            return max(0.0, start - now)

    def block(self, seconds: float) -> None:
        """The service refused the token for ``seconds`` (a 429 of its API rate limit)."""
        with self._lock:
            self.blocked_until = max(self.blocked_until, self.clock() + seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take in what an answer's ``Ratelimit`` headers say about the budget."""
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            now = self.clock()
            policy = _POLICY.search(lowered.get("ratelimit-policy", ""))
            if policy:
                self.quota = int(policy[1])
            limit = _RATELIMIT.search(lowered.get("ratelimit", ""))
            if limit:
                self.remaining, self.reset_at = int(limit[1]), now + int(limit[2])


class Throttles:
    """The :class:`Throttle` of each (API base URL, account) in the process: every token of an account
    shares it, as the service's per-user budget is shared by all of a user's tokens."""

    def __init__(self) -> None:
        self._throttles: dict[tuple[str, str], Throttle] = {}
        self._lock = threading.Lock()

    def get(self, base_url: str, account_id: str) -> Throttle:
        key = (base_url, account_id)
        with self._lock:
            throttle = self._throttles.get(key)
            if throttle is None:
                throttle = self._throttles[key] = Throttle()
            return throttle


THROTTLES = Throttles()
