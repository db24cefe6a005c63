"""
Every request of a contract run goes through one :class:`Ledger`: it counts what the API budget counts,
paces requests against a real account, stops the run before it can spend a real share of the budget,
and refuses any change to a queue the run did not create.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from airflow_provider_cfqueues.hooks.transport import DeadlineAdapter, total_deadline

#: pulls, acks and retries over HTTP are not counted by the API budget (since 2025-04-17)
EXEMPT_PATH = re.compile(r"/messages/(pull|ack)$")
QUEUE_ID_IN_PATH = re.compile(r"/accounts/[^/]+/queues/([^/]+)")


class ForeignQueueError(AssertionError):
    """A request would have changed a queue this run did not create."""


class BudgetSpentError(AssertionError):
    """The run reached its cap of counted requests."""


#: the share of the account's API budget a live run leaves to the account's other traffic (Ratelimit)
KEEP_FOR_OTHERS = 0.25
_REMAINING = re.compile(r"(?:^|[;,\s])r=(\d+)")
_QUOTA = re.compile(r"(?:^|[;,\s])q=(\d+)")


@dataclass
class Ledger:
    """
    :param counted_interval: least seconds between two requests the API budget counts (pushes, admin).
    :param exempt_interval: least seconds between two pulls or acks.
    :param cap: counted requests after which the run stops (Cloudflare allows 1,200 per 5 minutes).
    :param cleanup_reserve: counted requests kept, past ``cap``, for deleting what the run created.
    """

    counted_interval: float = 0.0
    exempt_interval: float = 0.0
    cap: int = 600
    cleanup_reserve: int = 60
    counted: int = 0
    exempt: int = 0
    owned: set[str] = field(default_factory=set)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    #: what the account's budget had left at the last answer that said (``Ratelimit`` headers), and its size
    remaining: int | None = None
    quota: int | None = None
    #: why the run stopped early, once it did (said at the end of the run and in the report)
    stopped_because: str | None = None
    _last: float = field(default=float("-inf"), init=False, repr=False)  # when the last request went
    _cleaning: bool = field(default=False, init=False, repr=False)

    @contextmanager
    def cleaning(self) -> Iterator[None]:
        """Requests that delete what the run created: they may use the reserve past the cap and the budget."""
        self._cleaning, before = True, self._cleaning
        try:
            yield
        finally:
            self._cleaning = before

    def admit(self, method: str, url: str) -> None:
        """Count, pace and check one request before it is sent."""
        path = urlsplit(url).path
        match = QUEUE_ID_IN_PATH.search(path)
        if method != "GET" and match is not None and match.group(1) not in self.owned:
            raise ForeignQueueError(f"refused {method} {path}: queue {match.group(1)!r} was not created by this run")
        exempt = EXEMPT_PATH.search(path) is not None
        if not exempt:
            self._check_budget()
        wait = self._last + (self.exempt_interval if exempt else self.counted_interval) - self.monotonic()
        if wait > 0:
            self.sleep(wait)
        self._last = self.monotonic()
        if exempt:
            self.exempt += 1
        else:
            self.counted += 1

    def _check_budget(self) -> None:
        if self._cleaning:
            if self.counted >= self.cap + self.cleanup_reserve or (self.remaining is not None and self.remaining <= 5):
                raise BudgetSpentError("even the cleanup reserve is spent")
            return
        if self.counted >= self.cap:
            self._stop(f"the run reached its cap of {self.cap} counted requests")
        keep = self.keep_for_others
        if self.remaining is not None and self.remaining <= keep:
            self._stop(
                f"the account's API budget has {self.remaining} requests left (Ratelimit header); the run stops, "
                f"keeping at least {keep} for the account's other traffic"
            )

    def _stop(self, reason: str) -> None:
        self.stopped_because = self.stopped_because or reason
        raise BudgetSpentError(reason)

    @property
    def keep_for_others(self) -> int:
        """Requests of the account's budget the run never spends: a quarter of it (300 of Cloudflare's 1,200)."""
        return math.ceil((self.quota or 1_200) * KEEP_FOR_OTHERS)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read what the account's budget has left from an answer's ``Ratelimit`` (or ``Ratelimit-Remaining``)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        remaining = _REMAINING.search(lowered.get("ratelimit", ""))
        if remaining is not None:
            self.remaining = int(remaining.group(1))
        elif lowered.get("ratelimit-remaining", "").strip().isdigit():
            self.remaining = int(lowered["ratelimit-remaining"])
        quota = _QUOTA.search(lowered.get("ratelimit-policy", ""))
        if quota is not None:
            self.quota = int(quota.group(1))


class LedgerAdapter(DeadlineAdapter):
    """The hook's transport adapter, with every request admitted by a :class:`Ledger` first."""

    def __init__(self, ledger: Ledger, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ledger

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.ledger.admit(request.method or "GET", request.url or "")
        response = super().send(request, *args, **kwargs)
        self.ledger.observe(response.headers)
        return response


class RedirectRefusedError(requests.RequestException):
    """An answer redirected elsewhere: the harness never follows (the request would leave the target)."""


def _refuse_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if response.is_redirect or 300 <= response.status_code < 400:
        where = urlsplit(response.headers.get("Location", ""))
        response.close()
        raise RedirectRefusedError(
            f"HTTP {response.status_code} from {response.request.method} {urlsplit(response.url).path}: a redirect "
            f"(to {where.scheme}://{where.hostname}...), not followed"
        )


def route_through(session: requests.Session, ledger: Ledger) -> requests.Session:
    """Mount a :class:`LedgerAdapter` on ``session`` for both schemes."""
    adapter = LedgerAdapter(ledger, pool_connections=1, pool_maxsize=4, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


#: seconds one request of the harness may take in all (``CFQUEUES_CONTRACT_REQUEST_DEADLINE``)
REQUEST_DEADLINE_ENV = "CFQUEUES_CONTRACT_REQUEST_DEADLINE"


class DeadlineSession(requests.Session):
    """A session whose every request, answer included, ends within ``deadline`` seconds in all."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        read_timeout = min(float(kwargs.get("timeout") or self.deadline), self.deadline, 10.0)
        kwargs.update(stream=True, timeout=read_timeout)
        with total_deadline(self.deadline) as deadline:
            try:
                response = super().request(method, url, *args, **kwargs)
                chunks = []
                try:
                    while chunk := response.raw.read1(65_536, decode_content=True):  # what has arrived
                        chunks.append(chunk)
                        if time.monotonic() >= deadline:
                            raise requests.Timeout("past the deadline")
                except (urllib3.exceptions.HTTPError, OSError) as err:
                    raise requests.ConnectionError(f"the answer was cut: {err}") from None
                response._content = b"".join(chunks)
                response.close()
                return response
            except requests.RequestException:
                if time.monotonic() >= deadline:
                    raise requests.Timeout(f"no complete answer within {self.deadline:g} s") from None
                raise


def raw_session(ledger: Ledger, token: str) -> requests.Session:
    """
    The harness's own session (raw requests, the cleanup): through the ledger, with the token, each
    request within a total deadline (a server dripping its answer cannot hold it), and a redirect is an
    error naming its status, never followed (the hook's transport refuses them itself).
    """
    deadline = float(os.environ.get(REQUEST_DEADLINE_ENV) or 60.0)
    session = route_through(DeadlineSession(deadline), ledger)
    session.headers["Authorization"] = f"Bearer {token}"
    session.max_redirects = 0
    session.hooks["response"].append(_refuse_redirect)
    return session
