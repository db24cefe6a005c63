"""
One target of the contract suite, the emulator or a real Cloudflare account, behind one interface:
raw HTTP, the provider's hook, queues the run owns (deleted at the end, also on failure), the clock,
and the checks a case records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_cfqueues.api.errors import CloudflareQueuesNotFoundError
from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from .created import CreatedRecord
from .ledger import Ledger, raw_session, route_through
from .report import AMBIGUOUS, DOCUMENTED, Check, plain

M = TypeVar("M")
CONN_ID = "cfqueues_contract"
#: a new pull consumer has been seen to answer 405 for a short while (shared/reference §11)
CONSUMER_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Answer:
    status: int
    payload: dict[str, Any]

    @property
    def error_code(self) -> int | None:
        errors = self.payload.get("errors") or []
        return errors[0].get("code") if errors else None

    @property
    def error_text(self) -> str:
        return " ".join(str(error.get("message", "")) for error in self.payload.get("errors") or [])


def redelivered(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, int]:
    """How many of ``after`` are messages of ``before`` again, and how many are others (ids differ per target,
    so the ids themselves are not an observation two targets can share)."""
    earlier = {message["id"] for message in before}
    again = sum(message["id"] in earlier for message in after)
    return {"again": again, "others": len(after) - again}


@dataclass(frozen=True)
class OwnedQueue:
    name: str
    id: str


class Target:
    """
    :param kind: ``live`` or ``emulator``.
    :param base_url: the API base URL (``https://api.cloudflare.com/client/v4`` for live runs).
    :param ledger: counts, paces and guards every request.
    :param wait: lets ``seconds`` pass: sleeps on a live account, advances the emulator's manual clock.
    :param now: the seconds of that same clock.
    :param prefix: the start of every queue name this run creates.
    :param case: the test's name, as the report shows it.
    :param checks: where the checks go (the session's report).
    :param emulator_reading: how the emulator is configured for open points (e.g. ``json_bodies``).
    :param poll_interval: seconds between polls of a live account (the emulator is polled once: its state
        is exact and its clock stands still).
    :param registry: the run's record of the queues it created and has not deleted yet (id -> name): what
        an interrupted run leaves behind is named at its end.
    :param record: on a live account, the file that records each queue before it is created (what
        ``make contract-cleanup`` may delete); ``None`` on the emulator.
    """

    def __init__(
        self,
        *,
        kind: str,
        base_url: str,
        token: str,
        account_id: str,
        ledger: Ledger,
        wait: Callable[[float], object],
        now: Callable[[], float],
        prefix: str,
        case: str,
        checks: list[Check],
        emulator_reading: dict[str, Any],
        poll_interval: float = 0.5,
        registry: dict[str, str] | None = None,
        record: CreatedRecord | None = None,
    ) -> None:
        self.kind = kind
        self.base_url = base_url
        self.account_id = account_id
        self.ledger = ledger
        self.wait = wait
        self.now = now
        self.prefix = prefix
        self.case = case
        self.checks = checks
        self.emulator_reading = emulator_reading
        self.poll_interval = poll_interval
        self.session = raw_session(ledger, token)
        self.hook = CloudflareQueuesHook(CONN_ID)
        route_through(self.hook.get_conn(), ledger)
        self._created: list[str] = []
        self.record = record
        self._registry = registry if registry is not None else {}  # the run's: queue id -> name, until deleted
        self._dead_letter_names: list[str] = []
        self._held: dict[str, list[dict[str, Any]]] = {}  # queue id -> messages a readiness probe leased

    @property
    def live(self) -> bool:
        return self.kind == "live"

    # -- checks ----------------------------------------------------------------------------------

    def expect(self, name: str, expectation: str, expected: Any, observed: Any) -> None:
        """A documented fact: recorded, then asserted on every target."""
        self._record(name, DOCUMENTED, expectation, expected, observed, plain(observed) == plain(expected))

    def expect_that(self, name: str, expectation: str, observed: Any, holds: bool) -> None:
        """A documented fact that is a condition rather than one value (e.g. "a 4xx status")."""
        self._record(name, DOCUMENTED, expectation, expectation, observed, holds)

    def observe(self, name: str, question: str, observed: Any, emulator_reading: Any) -> None:
        """An open point: recorded; on the emulator, asserted against the reading it documents."""
        holds = plain(observed) == plain(emulator_reading)
        self._record(name, AMBIGUOUS, question, emulator_reading, observed, holds)

    def _record(self, name: str, kind: str, expectation: str, expected: Any, observed: Any, holds: bool) -> None:
        self.checks.append(
            Check(self.case, name, kind, expectation, plain(expected), plain(observed), holds, self.kind)
        )
        if kind == DOCUMENTED or not self.live:
            assert holds, f"{self.case}: {name}: expected {expected!r}, observed {observed!r} ({self.kind})"

    # -- raw HTTP --------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        suffix: str = "",
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = None,
        **params: Any,
    ) -> Answer:
        """
        One request to ``…/accounts/{account}/queues{suffix}``; nothing validated, nothing retried.

        :param raw: the exact request body (instead of ``body`` as JSON).
        :param token: another token than the target's (a wrong one).
        """
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = self.session.request(
            method,
            f"{self.base_url}/accounts/{self.account_id}/queues{suffix}",
            data=data,
            params=params or None,
            headers=headers,
            timeout=60,
        )
        try:
            payload = response.json()
        except ValueError:
            payload = {"success": False, "errors": [{"code": None, "message": response.text[:200]}]}
        return Answer(response.status_code, payload if isinstance(payload, dict) else {"result": payload})

    def ok(self, method: str, suffix: str = "", body: Any = None, **kwargs: Any) -> Any:
        answer = self.call(method, suffix, body, **kwargs)
        assert answer.status == 200 and answer.payload.get("success"), (answer.status, answer.payload)
        return answer.payload.get("result")

    def push(self, queue: OwnedQueue, body: Any, **fields: Any) -> Answer:
        return self.call("POST", f"/{queue.id}/messages", {"body": body, **fields})

    def batch(self, queue: OwnedQueue, messages: list[dict[str, Any]], **fields: Any) -> Answer:
        return self.call("POST", f"/{queue.id}/messages/batch", {"messages": messages, **fields})

    def pull(self, queue: OwnedQueue, **fields: Any) -> list[dict[str, Any]]:
        result = self.ok("POST", f"/{queue.id}/messages/pull", fields)
        return list(result["messages"])

    def ack(self, queue: OwnedQueue, acks: list[str] = (), retries: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
        body = {"acks": [{"lease_id": lease} for lease in acks], "retries": list(retries)}
        return dict(self.ok("POST", f"/{queue.id}/messages/ack", body))

    def metrics(self, queue: OwnedQueue) -> dict[str, Any]:
        return dict(self.ok("GET", f"/{queue.id}/metrics"))

    # -- time ------------------------------------------------------------------------------------

    def wait_until(self, moment: float) -> None:
        """Let time pass until ``moment`` (a reading of :attr:`now`)."""
        remaining = moment - self.now()
        if remaining > 0:
            self.wait(remaining)

    def polls(self, timeout: float = 15.0) -> Iterator[int]:
        """
        Chances to see something happen: once on the emulator (its state is exact and its clock stands
        still), every ``poll_interval`` until ``timeout`` on a live account (which is eventually consistent).
        """
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            yield attempt
            attempt += 1
            if not self.live or time.monotonic() >= deadline:
                return
            time.sleep(self.poll_interval)

    def collect(self, queue: OwnedQueue, count: int, timeout: float = 15.0, **fields: Any) -> list[dict[str, Any]]:
        """Pull until ``count`` messages came (or the polls run out); returns what came, leased."""
        held = self._held.pop(queue.id, [])
        return held + self._gather(lambda size: self.pull(queue, batch_size=size, **fields), count - len(held), timeout)

    def hook_collect(self, queue: OwnedQueue, count: int, timeout: float = 15.0) -> list[PulledMessage]:
        """:meth:`collect` through the provider's hook: the messages as a DAG gets them, bodies decoded
        (not for a queue whose consumer was just awaited: its probe's messages are held for :meth:`collect`)."""
        return self._gather(
            lambda size: self.hook.pull_messages(queue=queue.id, batch_size=size).messages, count, timeout
        )

    def _gather(self, pull: Callable[[int], list[M]], count: int, timeout: float) -> list[M]:
        got: list[M] = []
        for _ in self.polls(timeout):
            while len(got) < count:
                batch = pull(min(100, count - len(got)))
                if not batch:
                    break
                got += batch
            if len(got) >= count:
                break
        return got

    def settled_metrics(self, queue: OwnedQueue, backlog_count: int, timeout: float = 15.0) -> dict[str, Any]:
        """The queue's metrics once they show ``backlog_count`` (live metrics are best-effort and lag)."""
        metrics = self.metrics(queue)
        for _ in self.polls(timeout):
            metrics = self.metrics(queue)
            if metrics["backlog_count"] == backlog_count:
                break
        return metrics

    # -- queues ----------------------------------------------------------------------------------

    def queue_name(self, label: str) -> str:
        return f"{self.prefix}-{label}"[:63]

    def queue(self, label: str, *, consumer: bool = True, **consumer_settings: Any) -> OwnedQueue:
        """A new queue named after this run, with an HTTP pull consumer unless ``consumer=False``."""
        name = self.queue_name(label)
        if self.record is not None:
            self.record.intend(name)  # before the request: an answer lost or a run killed leaves the name
        created = self.hook.create_queue(name)
        owned = self.own(created.queue_name, created.queue_id)
        if consumer:
            self.add_consumer(owned, **consumer_settings)
        return owned

    def add_consumer(self, queue: OwnedQueue, *, ready: bool = True, **consumer_settings: Any) -> None:
        """Add an HTTP pull consumer; with ``ready``, on a live account, wait until pulls are accepted."""
        self.hook.create_consumer(queue.id, **consumer_settings)
        if ready:
            self.await_consumer(queue)

    def await_consumer(self, queue: OwnedQueue) -> None:
        """
        Wait until the queue's new consumer takes pulls (at once on the emulator). The probe is a pull: what
        it leases is kept for the next :meth:`collect`, so that no delivery attempt is spent unseen.
        """
        if not self.live:
            return
        deadline = time.monotonic() + CONSUMER_READY_TIMEOUT
        while True:
            probe = self.call("POST", f"/{queue.id}/messages/pull", {"batch_size": 1})
            if probe.status != 405:
                break
            assert time.monotonic() < deadline, (
                f"the consumer of {queue.name} took no effect in {CONSUMER_READY_TIMEOUT} s"
            )
            time.sleep(self.poll_interval)
        assert probe.status == 200, (probe.status, probe.payload)
        self._held.setdefault(queue.id, []).extend(probe.payload["result"]["messages"])

    def dead_letter_queue_name(self, label: str) -> str:
        """The name for a dead-letter queue the service will create: deleted at the end if it exists."""
        name = self.queue_name(label)
        if self.record is not None:
            self.record.intend(name)
        self._dead_letter_names.append(name)
        return name

    def adopt(self, name: str) -> OwnedQueue | None:
        """
        A queue the service created for this run (a dead-letter queue), or ``None`` if it does not exist
        yet. One request with the service's ``name`` filter: the account's other queues are never listed.
        """
        answer = self.call("GET", "", name=name)
        assert answer.status == 200, (answer.status, answer.payload)
        found = [queue for queue in answer.payload.get("result") or [] if queue.get("queue_name") == name]
        return self.own(name, found[0]["queue_id"]) if found else None

    def own(self, name: str, queue_id: str) -> OwnedQueue:
        """Take ``queue_id`` into this run: it may be changed, and it is deleted at the end."""
        self.ledger.owned.add(queue_id)
        if self.record is not None:
            self.record.created(name, queue_id)
        if queue_id not in self._created:
            self._created.append(queue_id)
        self._registry[queue_id] = name
        return OwnedQueue(name, queue_id)

    def cleanup(self) -> list[str]:
        """
        Delete every queue (and consumer) this case created; returns what could not be deleted, named
        (each failure is recorded, and the next queue is still tried).
        """
        failures = []
        for name in self._dead_letter_names:
            try:
                if self.adopt(name) is None and self.record is not None:
                    self.record.deleted(name)  # the service never made it: nothing to clean up
            except Exception as err:
                failures.append(f"{name} (the dead-letter queue the service made, not found): {type(err).__name__}")
        for queue_id in reversed(self._created):
            name = self._registry.get(queue_id, "?")
            try:
                for consumer in self.hook.list_consumers(queue_id):
                    self.hook.delete_consumer(queue_id, consumer.consumer_id)
                self.hook.delete_queue(queue_id)
            except CloudflareQueuesNotFoundError:
                pass  # already gone
            except Exception as err:
                failures.append(f"{name} ({queue_id}): {type(err).__name__}: {err}")
                continue
            if self.record is not None:
                self.record.deleted(name)
            self._registry.pop(queue_id, None)
        self._created.clear()
        self._dead_letter_names.clear()
        return failures
