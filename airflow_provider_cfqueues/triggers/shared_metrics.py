"""
One metrics poll per interval for every backlog trigger of a triggerer that watches the same queue
through the same connection, however many there are (1,000 deferred sensors on 20 queues make 20
polls per interval, not 1,000: Cloudflare's budget is 1,200 requests per 5 minutes per token, and
metrics count against it). Each trigger still decides with its own criteria.
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from ..api.errors import CloudflareQueuesError
from ..api.models import QueueMetrics
from ..hooks.queues import CloudflareQueuesHook

#: a cached answer serves a trigger when younger than this share of its poll interval
FRESHNESS = 0.9

_Key = tuple[int, str, str, str]


class SharedMetrics:
    """
    The latest metrics of one queue (or the error polling it gave), shared by the triggers of one event
    loop. Use :meth:`acquire` / :meth:`release` around a trigger's life, :meth:`get` to poll.

    :param hook: the hook that polls (one per shared queue).
    """

    _shared: ClassVar[dict[_Key, SharedMetrics]] = {}

    def __init__(self, key: _Key, hook: CloudflareQueuesHook) -> None:
        self.key = key
        self.hook = hook
        self.users = 0
        self.polls = 0
        self._at = -float("inf")
        self._result: QueueMetrics | CloudflareQueuesError | None = None
        self._polling: asyncio.Task[QueueMetrics | CloudflareQueuesError] | None = None

    @classmethod
    def acquire(cls, conn_id: str, account_id: str | None, queue: str | None) -> SharedMetrics:
        """The shared poller of this queue and connection in the running event loop."""
        key = (id(asyncio.get_running_loop()), conn_id, account_id or "", queue or "")
        shared = cls._shared.get(key)
        if shared is None:
            hook = CloudflareQueuesHook(conn_id, queue=queue, account_id=account_id)
            shared = cls._shared[key] = cls(key, hook)
        shared.users += 1
        return shared

    async def release(self) -> None:
        """One trigger less; the last one closes the hook."""
        self.users -= 1
        if self.users <= 0 and self._shared.get(self.key) is self:
            del self._shared[self.key]
            await self.hook.aclose()

    async def get(self, poll_interval: float) -> QueueMetrics:
        """Metrics at most ``FRESHNESS * poll_interval`` seconds old: the cached ones, the poll in
        progress, or a new poll. Raises the error of that poll."""
        if self._result is None or time.monotonic() - self._at >= FRESHNESS * poll_interval:
            if self._polling is None:
                self._polling = asyncio.ensure_future(self._poll())
            result = await asyncio.shield(self._polling)
        else:
            result = self._result
        if isinstance(result, CloudflareQueuesError):
            raise result
        return result

    async def _poll(self) -> QueueMetrics | CloudflareQueuesError:
        try:
            result: QueueMetrics | CloudflareQueuesError = await self.hook.aget_metrics()
        except CloudflareQueuesError as err:
            result = err
        except BaseException:
            self._polling = None
            raise
        self.polls += 1
        self._result, self._at, self._polling = result, time.monotonic(), None
        return result
