"""
The message trigger's pull loop, shared by its own ``run()`` and by the shared-stream producer: back
off while the queue is empty, keep polling (slowly, with one warning) while delivery is paused, poll
again after a transient error, end on an error that polling again cannot cure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..api.errors import CloudflareQueuesDeliveryPausedError
from ..api.flows import Collected


class Schedule(Protocol):
    """How often to pull, read afresh on every use (a shared loop's follows its watchers)."""

    @property
    def poll_interval(self) -> float: ...

    @property
    def max_poll_interval(self) -> float: ...

    @property
    def paused_poll_interval(self) -> float: ...


@dataclass(frozen=True)
class PollSchedule:
    """
    How often the loop pulls.

    :param poll_interval: seconds before pulling again after an empty pull (and after an error); it
        doubles with each further empty pull, up to ``max_poll_interval``.
    :param max_poll_interval: the longest wait between pulls of an idle queue.
    :param paused_poll_interval: seconds between pulls while the queue's delivery is paused.
    """

    poll_interval: float
    max_poll_interval: float
    paused_poll_interval: float


async def poll_messages(
    pull: Callable[[], Awaitable[Collected]], schedule: Schedule, queue: str | None, log: Any
) -> AsyncIterator[Collected]:
    """
    Yield every pull (or collection of pulls) that leased messages, forever. A non-retryable error
    (a wrong token or queue) is raised, after the messages pulled with it were yielded.
    """
    paused = False
    idle_wait = schedule.poll_interval  # grows while the queue stays empty
    while True:
        collected = await pull()
        error = collected.error
        if isinstance(error, CloudflareQueuesDeliveryPausedError):
            if not paused:
                log.warning(
                    "Delivery of queue %s is paused: pulling again every %g s until it is resumed",
                    queue,
                    schedule.paused_poll_interval,
                )
            paused = True
        elif paused and error is None:
            log.info("Delivery of queue %s was resumed", queue)
            paused = False
        if collected.messages:
            yield collected
        if paused:
            await asyncio.sleep(schedule.paused_poll_interval)
            continue
        if error is not None:
            if not error.retryable:
                raise error  # a wrong token or queue: the triggerer shows the failure
            log.warning("Pulling failed (%s); trying again in %.0f s", error, schedule.poll_interval)
            await asyncio.sleep(schedule.poll_interval)
            continue
        if collected.messages:
            idle_wait = schedule.poll_interval
            continue  # there may be more right away
        await asyncio.sleep(idle_wait)
        idle_wait = min(schedule.max_poll_interval, idle_wait * 2)
