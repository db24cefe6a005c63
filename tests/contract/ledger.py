"""
Every request of a contract run goes through one :class:`Ledger`: it counts what the API budget counts,
paces requests against a real account, stops the run before it can spend a real share of the budget,
and refuses any change to a queue the run did not create.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from airflow_provider_cfqueues.hooks.transport import DeadlineAdapter

#: pulls, acks and retries over HTTP are not counted by the API budget (since 2025-04-17)
EXEMPT_PATH = re.compile(r"/messages/(pull|ack)$")
QUEUE_ID_IN_PATH = re.compile(r"/accounts/[^/]+/queues/([^/]+)")


class ForeignQueueError(AssertionError):
    """A request would have changed a queue this run did not create."""


class BudgetSpentError(AssertionError):
    """The run reached its cap of counted requests."""


@dataclass
class Ledger:
    """
    :param counted_interval: least seconds between two requests the API budget counts (pushes, admin).
    :param exempt_interval: least seconds between two pulls or acks.
    :param cap: counted requests after which the run stops (Cloudflare allows 1,200 per 5 minutes).
    """

    counted_interval: float = 0.0
    exempt_interval: float = 0.0
    cap: int = 600
    counted: int = 0
    exempt: int = 0
    owned: set[str] = field(default_factory=set)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    _last: float = field(default=float("-inf"), init=False, repr=False)  # when the last request went

    def admit(self, method: str, url: str) -> None:
        """Count, pace and check one request before it is sent."""
        path = urlsplit(url).path
        match = QUEUE_ID_IN_PATH.search(path)
        if method != "GET" and match is not None and match.group(1) not in self.owned:
            raise ForeignQueueError(f"refused {method} {path}: queue {match.group(1)!r} was not created by this run")
        exempt = EXEMPT_PATH.search(path) is not None
        if not exempt and self.counted >= self.cap:
            raise BudgetSpentError(f"the run reached its cap of {self.cap} counted requests")
        wait = self._last + (self.exempt_interval if exempt else self.counted_interval) - self.monotonic()
        if wait > 0:
            self.sleep(wait)
        self._last = self.monotonic()
        if exempt:
            self.exempt += 1
        else:
            self.counted += 1


class LedgerAdapter(DeadlineAdapter):
    """The hook's transport adapter, with every request admitted by a :class:`Ledger` first."""

    def __init__(self, ledger: Ledger, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ledger

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.ledger.admit(request.method or "GET", request.url or "")
        return super().send(request, *args, **kwargs)


def route_through(session: requests.Session, ledger: Ledger) -> requests.Session:
    """Mount a :class:`LedgerAdapter` on ``session`` for both schemes."""
    adapter = LedgerAdapter(ledger, pool_connections=1, pool_maxsize=4, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
