"""
One pull loop per queue in a process: the message trigger's ``ack="persisted"`` path.

Airflow groups shared-stream subscribers by ``shared_stream_key()``, which must be computed without
I/O, so it cannot tell that ``"shop"`` and ``"3f2a…"`` (its id), or two connections to one account, are
one queue. Each Airflow group's producer is therefore a :class:`Tap` on the process's
:class:`QueueLoop` for the queue's identity (API URL, account id, queue id, resolved once), and each
watcher registers itself with that loop (:meth:`QueueLoop.join`) before it reads the stream. So the
loop knows every watcher of the queue in the process, with its settings, assets and trigger id:

* it pulls with the merged settings (:func:`~airflow_provider_cfqueues.api.loop_rules.merge_watchers`)
  and pulls nothing while watchers conflict;
* it publishes itself in the deployment-wide registry (:mod:`.loop_registry`) every heartbeat and
  pulls only while no other loop of the queue lives in another process and every watcher seen before a
  restart is back (:func:`~airflow_provider_cfqueues.api.loop_rules.deployment_verdict`);
* it fans every batch out to its taps and settles each message once every tap has resolved it: acked
  if a watcher took it, given back (with the backoff) if a watcher's event may not have been stored,
  settled as ``on_rejected`` says if every watcher that was there saw it and none wanted it, and given
  back at once otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import json
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..api.errors import (
    CloudflareQueuesAckError,
    CloudflareQueuesError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesValidationError,
)
from ..api.flows import Collected
from ..api.loop_rules import (
    Liveness,
    LoopEntry,
    LoopPlan,
    PullWishes,
    SettleRule,
    Verdict,
    WatcherSpec,
    deployment_verdict,
    merge_watchers,
)
from ..api.models import PulledMessage
from ..consume.attempts import DEFAULT_BACKOFF, AttemptBudget, resolve_message_retry_delay
from ..consume.fate import (
    AdvancePlan,
    Resolution,
    check_lease_outlasts_ack_window,
    give_back,
    plan_advance,
    resolve_batch,
    run_async,
)
from ..consume.poison import QueueRoute, check_poison_queue
from ..hooks.queues import CloudflareQueuesHook
from .loop_registry import MemoryStore, RegistryStore, decode_entries, default_store, queue_prefix
from .polling import poll_messages

#: seconds between a loop's heartbeats in the deployment registry
HEARTBEAT_SECONDS = 5.0
#: a loop whose heartbeat has not moved for this long is taken for gone
ALIVE_FOR_SECONDS = 3 * HEARTBEAT_SECONDS
#: how long the watchers of a stopped or dead loop are waited for (a triggerer restart)
REMEMBERED_FOR_SECONDS = 120.0
#: the registry is read again before a pull when it was last read longer ago than this
RECHECK_SECONDS = 1.0
#: seconds between two logs of the same reason to hold
HOLD_LOG_SECONDS = 60.0


#: the pull settings before any watcher has joined (the trigger's defaults)
DEFAULT_PULL = PullWishes(
    batch_size=100,
    max_messages_per_event=100,
    visibility_timeout=600.0,
    poll_interval=5.0,
    max_poll_interval=60.0,
    paused_poll_interval=60.0,
)


@dataclass(frozen=True)
class QueueIdentity:
    """
    A queue, however it is spelled: the API it is reached through, the account and the queue id.

    :param scope: the API base URL.
    :param account_id: the account id.
    :param queue_id: the queue id.
    """

    scope: str
    account_id: str
    queue_id: str


#: how a group of watchers reaches the queue: connection id, account id, the queue as spelled
Route = tuple[str, "str | None", "str | None"]


@dataclass(frozen=True)
class StreamedBatch:
    """
    The raw event every watcher of the queue receives: a batch of messages, without their leases.

    :param batch_id: the batch's number in its loop.
    :param queue: the queue's name.
    :param queue_id: its id.
    :param messages: the messages as in the event payload (``id``, ``body``, ``attempts``, ...).
    """

    batch_id: int
    queue: str | None
    queue_id: str | None
    messages: tuple[dict[str, Any], ...]


@dataclass(eq=False)
class LoopBatch:
    """
    One pulled batch and what became of it, until it is settled.

    :param streamed: the raw event.
    :param messages: the pulled messages, in the same order.
    :param audience: keys of the ``"persisted"`` watchers joined when it was fanned out.
    :param pending: the taps that have not resolved it yet.
    :param seen: keys of the watchers whose filter ran on it.
    :param taken: ids of the messages a watcher fired.
    :param failed: whether Airflow failed it for some watcher (its event may not be stored).
    """

    streamed: StreamedBatch
    messages: list[PulledMessage]
    audience: frozenset[str]
    pending: set[Tap] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    taken: set[str] = field(default_factory=set)
    failed: bool = False

    def resolutions(self) -> list[Resolution]:
        """One resolution per message (:func:`~airflow_provider_cfqueues.consume.fate.resolve_batch`)."""
        everyone_saw = bool(self.audience) and self.audience <= self.seen
        return resolve_batch(
            [m.id for m in self.messages], failed=self.failed, everyone_saw=everyone_saw, taken=self.taken
        )


class Tap:
    """
    One Airflow group's view of the loop: the batches to broadcast, and their resolutions back.

    :param loop: the queue's loop.
    :param route: the group's connection, account and queue spelling (its watchers name the same).
    """

    def __init__(self, loop: QueueLoop, route: Route) -> None:
        self.loop = loop
        self.route = route
        self.batches: asyncio.Queue[LoopBatch | BaseException] = asyncio.Queue()

    async def stream(self) -> AsyncIterator[LoopBatch]:
        while True:
            item = await self.batches.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def resolve(self, items: Iterable[tuple[LoopBatch, bool]]) -> None:
        """Airflow resolved these batches for this tap's watchers (``True``: failed for some)."""
        await self.loop.resolve(self, items)

    def close(self) -> None:
        self.loop.detach(self)


class _Schedule:
    """The loop's poll schedule, read afresh on every use (it follows the merged settings)."""

    def __init__(self, loop: QueueLoop) -> None:
        self.loop = loop

    @property
    def poll_interval(self) -> float:
        return self.loop.pull.poll_interval

    @property
    def max_poll_interval(self) -> float:
        return self.loop.pull.max_poll_interval

    @property
    def paused_poll_interval(self) -> float:
        return self.loop.pull.paused_poll_interval


class QueueLoop:
    """
    The pull loop of one queue in one process.

    :param directory: the process's loops.
    :param identity: the queue.
    :param name: the queue's name (for logs and events).
    :param hook: the hook it pulls and settles with (the connection of the first watcher or tap).
    """

    def __init__(self, directory: Directory, identity: QueueIdentity, name: str, hook: CloudflareQueuesHook) -> None:
        self.directory = directory
        self.identity = identity
        self.name = name
        self.hook = hook
        self.log = logging.getLogger(__name__)
        self.watchers: dict[str, WatcherSpec] = {}
        self.routes: dict[str, Route] = {}
        self.taps: set[Tap] = set()
        self.plan = LoopPlan(pull=None, settle=None)
        self.verdict = Verdict(False)
        self._pull = DEFAULT_PULL
        self.error: BaseException | None = None
        self.loop_id = uuid.uuid4().hex[:16]
        self.registry_key = queue_prefix(identity.scope, identity.account_id, identity.queue_id) + self.loop_id
        self.in_flight = 0
        self.batches: dict[int, LoopBatch] = {}
        self._numbers = itertools.count(1)
        self._beat = 0
        self._liveness = Liveness(directory.alive_for, directory.remembered_for)
        self._checked_at = float("-inf")
        self._first_published: float | None = None
        self._changed = asyncio.Event()
        self._settled = asyncio.Event()
        self._pull_task: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self._checked_settle: SettleRule | None = None
        self._message_retry_delay = resolve_message_retry_delay(None)
        self._poison_queue_id: str | None = None
        self._hold = 0.0
        self._hold_until = 0.0
        self._logged: dict[str, float] = {}
        #: watchers that left, and when (those that left together with the last are a shutdown's)
        self._left: dict[str, tuple[WatcherSpec, float]] = {}
        #: settlements started outside the advance path (batches abandoned by a group that stopped)
        self._settling: set[asyncio.Future[None]] = set()
        #: the registry keys of the queue at the last full read
        self._keys: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    # -- membership ---------------------------------------------------------------------------

    @property
    def pull(self) -> PullWishes:
        """The merged pull settings (the last ones, while no ``"persisted"`` watcher is joined)."""
        return self._pull

    @property
    def persisted(self) -> bool:
        return any(w.ack == "persisted" for w in self.watchers.values())

    def join(self, spec: WatcherSpec, route: Route) -> None:
        """Register a watcher (before it reads the stream), and the group it reads in."""
        if spec.conn_id != self.hook.cloudflare_queues_conn_id:
            self.log.info(
                "Queue %s: %s reaches it through connection %r; the loop pulls with %r, the connection it was "
                "opened with",
                self.name,
                spec.describe(),
                spec.conn_id,
                self.hook.cloudflare_queues_conn_id,
            )
        self.watchers[spec.key] = spec
        self.routes[spec.key] = route
        self._replan()
        self._start()

    def leave(self, key: str) -> None:
        spec = self.watchers.pop(key, None)
        if spec is not None:
            now = time.monotonic()
            # only those that leave together with the last matter (a shutdown's): the list stays small
            self._left = {k: (s, at) for k, (s, at) in self._left.items() if at >= now - self.directory.heartbeat}
            self._left[key] = (spec, now)
            self.routes.pop(key, None)
            self._replan()
            self._maybe_close()

    def attach(self, route: Route) -> Tap:
        tap = Tap(self, route)
        self.taps.add(tap)
        if self.error is not None:
            tap.batches.put_nowait(self.error)
        self._start()
        self._changed.set()
        return tap

    def detach(self, tap: Tap) -> None:
        self.taps.discard(tap)
        abandoned = []
        for batch in list(self.batches.values()):
            if tap in batch.pending:  # its watchers are gone: what they did not resolve comes again
                batch.pending.discard(tap)
                batch.failed = True
                if not batch.pending:
                    del self.batches[batch.streamed.batch_id]
                    abandoned.append(batch)
        if abandoned:
            self._settling.add(asyncio.ensure_future(self.settle(abandoned)))
        self._maybe_close()

    async def batch_watcher_refused(self) -> str | None:
        """
        Why a watcher in ``"dag"``/``"emitted"`` mode must not pull now (``None``: it may): the queue has
        ``"persisted"`` watchers in this process, or in another (the registry is read first if stale).
        """
        if self.persisted:
            return "; ".join(self.plan.conflicts)
        if time.monotonic() - self._checked_at >= RECHECK_SECONDS:
            await self._recheck()
        return None if self.verdict.pull else self.verdict.reason

    def _replan(self) -> None:
        plan = merge_watchers(self.watchers.values())
        if plan.merged and plan.merged != self.plan.merged:
            self.log.info(
                "Queue %s: its watchers asked for different pull settings; the loop uses the most eager (%s)",
                self.name,
                "; ".join(plan.merged),
            )
        self.plan = plan
        if plan.pull is not None:
            self._pull = plan.pull
        self._changed.set()

    def _start(self) -> None:
        if self._beat_task is None:
            self._beat_task = asyncio.ensure_future(self._heartbeats())
        if self._pull_task is None and self.taps:
            self._pull_task = asyncio.ensure_future(self._pull_and_fan_out())

    def _maybe_close(self) -> None:
        if self.watchers or self.taps or self._closing is not None:
            return
        self.directory.forget(self)
        tasks = [t for t in (self._pull_task, self._beat_task) if t is not None]
        for task in tasks:
            task.cancel()
        self._closing = asyncio.ensure_future(self._close(tasks))
        self.directory.closing.add(self._closing)

    async def wait_closed(self) -> None:
        """Wait until a loop that lost its last member has stopped (its registry entry and hook closed)."""
        if self._closing is not None:
            await asyncio.shield(self._closing)

    async def _close(self, tasks: list[asyncio.Task[None]]) -> None:
        current = asyncio.current_task()
        if current is not None:
            current.add_done_callback(self.directory.closing.discard)
        await asyncio.gather(*tasks, *self._settling, return_exceptions=True)
        try:
            await self._publish(stopping=True)
        except Exception:  # best effort: the entry ages out
            self.log.warning("Queue %s: could not update the loop registry on stopping", self.name, exc_info=True)
        await self.hook.aclose()

    # -- the deployment registry ----------------------------------------------------------------

    def _entry(self, state: str) -> LoopEntry:
        if state == "running":
            held = list(self.watchers.values())
        else:  # a stopped loop's watchers are waited for after a restart: those that left with the last
            last = max((at for _, at in self._left.values()), default=0.0)
            held = [
                spec
                for spec, at in self._left.values()
                if at >= last - self.directory.heartbeat and spec.ack == "persisted" and spec.trigger_id is not None
            ]
        watchers = {spec.key: {"assets": list(spec.assets), "ack": spec.ack} for spec in held}
        return LoopEntry(self.loop_id, self.directory.where, state, self._beat, watchers)

    async def _publish(self, *, stopping: bool = False) -> None:
        store = self.directory.store
        if stopping:
            entry = self._entry("stopped")
            if entry.watchers and self.verdict.pull:
                await store.put(self.registry_key, json.dumps(entry.to_json()))
            else:
                await store.delete(self.registry_key)
            return
        self._beat += 1
        if self._first_published is None:
            self._first_published = time.monotonic()
        await store.put(self.registry_key, json.dumps(self._entry("running").to_json()))

    async def check_deployment(self) -> Verdict:
        """Publish this loop, read every loop of the queue, and decide whether it may pull."""
        await self._publish()
        prefix = queue_prefix(self.identity.scope, self.identity.account_id, self.identity.queue_id)
        values = await self.directory.store.read(prefix)
        self._keys = frozenset(values)
        self._read_at = time.monotonic()
        entries = decode_entries(values)
        verdict = deployment_verdict(
            self._entry("running"), entries, self._liveness, time.monotonic(), persisted=self.persisted
        )
        for key in verdict.forget:
            await self.directory.store.delete(key)
        if verdict.pull and not self.verdict.pull and self.verdict.reason:
            self.log.info("Queue %s: every watcher of the queue is held here now; pulling again", self.name)
        self.verdict = verdict
        self._checked_at = time.monotonic()
        return verdict

    async def _recheck(self) -> None:
        """
        Before a pull: list the queue's registry keys (the metadata database only) and read the entries
        in full (which may consult a secrets backend per key) only when a loop appeared or went, or a
        heartbeat has passed; so a new loop in another process is seen within a second.
        """
        if time.monotonic() - self._read_at >= self.directory.heartbeat:
            await self.check_deployment()
            return
        prefix = queue_prefix(self.identity.scope, self.identity.account_id, self.identity.queue_id)
        if frozenset(await self.directory.store.keys(prefix)) != self._keys:
            await self.check_deployment()
        else:
            self._checked_at = time.monotonic()

    async def _guarded(self, check: Callable[[], Awaitable[object]]) -> None:
        """Run a registry check; when the registry fails, hold: nobody can tell what else runs."""
        try:
            await check()
        except Exception:
            self.verdict = Verdict(False, "the loop registry (Airflow Variables) cannot be read or written")
            self.log.warning("Queue %s: the loop registry failed; not pulling", self.name, exc_info=True)

    async def _heartbeats(self) -> None:
        while True:
            await self._guarded(self.check_deployment)
            self._changed.set()
            await asyncio.sleep(self.directory.heartbeat)

    # -- pulling --------------------------------------------------------------------------------

    def _log_hold(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._logged.get(reason, float("-inf")) >= HOLD_LOG_SECONDS:
            self._logged[reason] = now
            self.log.error("Queue %s: not pulling: %s. Nothing is pulled, so nothing is lost", self.name, reason)

    async def _ready(self) -> None:
        """Wait until the loop may pull: watchers agree, no other loop anywhere, room for more."""
        while True:
            self._changed.clear()
            if self.plan.pull is not None and self.plan.settle is not None and self._every_watcher_tapped():
                if time.monotonic() - self._checked_at >= RECHECK_SECONDS:
                    await self._guarded(self._recheck)
                if not self.verdict.pull:
                    self._log_hold(self.verdict.reason)
                elif not self._announced():
                    pass  # another process starting now sees this loop before it pulls, and this one sees it
                elif self._room():
                    await self._check_settle_rule()
                    return
            elif self.plan.conflicts:
                self._log_hold("; ".join(self.plan.conflicts))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), RECHECK_SECONDS)

    def _announced(self) -> bool:
        """Whether the loop published itself ``start_delay`` ago and read the registry since."""
        first = self._first_published
        return first is not None and self._checked_at - first >= self.directory.start_delay

    def _every_watcher_tapped(self) -> bool:
        """Whether the group of every ``"persisted"`` watcher has its tap (else it would miss a batch)."""
        tapped = {tap.route for tap in self.taps}
        return bool(tapped) and all(
            self.routes[key] in tapped for key, spec in self.watchers.items() if spec.ack == "persisted"
        )

    def _room(self) -> bool:
        gather = self.pull.max_messages_per_event
        limit = max(gather, self.directory.max_in_flight)
        return self.in_flight + gather <= limit and len(self.batches) < self.directory.max_batches_in_flight

    async def _check_settle_rule(self) -> None:
        """What must hold before pulling under a settle rule: a long lease, somewhere for rejected messages."""
        settle = self.plan.settle
        if settle == self._checked_settle:
            return
        check_lease_outlasts_ack_window(self.pull.visibility_timeout, self.directory.ack_timeout)
        assert settle is not None
        on_rejected, poison = settle.on_rejected, settle.poison_queue
        if on_rejected == "dead_letter":
            budget = AttemptBudget.of(await self.hook.aget_queue(self.identity.queue_id))
            if not budget.dead_letter_queue:
                raise CloudflareQueuesValidationError(
                    f"on_rejected='dead_letter', but the consumer of queue {self.name!r} has no dead-letter queue: "
                    "rejected messages would be deleted after their last delivery. Configure one "
                    "(CloudflareQueuesUpdateConsumerOperator(dead_letter_queue=...)), or use "
                    "on_rejected='retry' or 'poison'"
                )
        if on_rejected == "poison":
            try:
                self._poison_queue_id = (await self.hook.aget_queue(str(poison))).queue_id
            except CloudflareQueuesNotFoundError:
                self._poison_queue_id = None
            check_poison_queue("poison_queue", str(poison), self._poison_queue_id, self.identity.queue_id, "watched")
        self._checked_settle = settle
        self._message_retry_delay = resolve_message_retry_delay(settle.message_retry_delay)
        self.log.info(
            "Pulling queue %s for %d watcher(s) in this process (one loop: up to %d messages per batch, leases of "
            "%g s); a message is acked once every watcher resolved its batch",
            self.name,
            len(self.watchers),
            self.pull.max_messages_per_event,
            self.pull.visibility_timeout,
        )

    async def _collect(self) -> Collected:
        hold = self._hold_until - time.monotonic()
        if hold > 0:
            await asyncio.sleep(hold)
        await self._ready()
        return await self.hook.acollect_messages(
            queue=self.identity.queue_id,
            batch_size=self.pull.batch_size,
            max_messages=self.pull.max_messages_per_event,
            visibility_timeout=self.pull.visibility_timeout,
        )

    async def _pull_and_fan_out(self) -> None:
        try:
            async for collected in poll_messages(self._collect, _Schedule(self), self.name, self.log):
                batch = self._fan_out(collected)
                if not batch.pending:  # every group left while it was pulled: back at once
                    del self.batches[batch.streamed.batch_id]
                    await self.settle([batch])
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            self.error = err
            self.directory.forget(self)
            for tap in self.taps:
                tap.batches.put_nowait(err)

    def _fan_out(self, collected: Collected) -> LoopBatch:
        number = next(self._numbers)
        streamed = StreamedBatch(
            number,
            self.name,
            collected.queue_id,
            tuple({**m.to_xcom(lease=False), **m.event_fields()} for m in collected.messages),
        )
        tapped = {tap.route for tap in self.taps}
        audience = frozenset(k for k, w in self.watchers.items() if w.ack == "persisted" and self.routes[k] in tapped)
        batch = LoopBatch(streamed, collected.messages, audience, pending=set(self.taps))
        self.batches[number] = batch
        self.in_flight += len(collected.messages)
        for tap in self.taps:
            tap.batches.put_nowait(batch)
        return batch

    def saw(self, batch_id: int, watcher: str, taken: Iterable[str]) -> None:
        """A watcher's filter ran on a batch and fired ``taken``."""
        batch = self.batches.get(batch_id)
        if batch is not None:
            batch.seen.add(watcher)
            batch.taken.update(taken)

    # -- settling -------------------------------------------------------------------------------

    async def resolve(self, tap: Tap, items: Iterable[tuple[LoopBatch, bool]]) -> None:
        done = []
        for batch, failed in items:
            batch.failed = batch.failed or failed
            batch.pending.discard(tap)
            if not batch.pending and self.batches.pop(batch.streamed.batch_id, None) is not None:
                done.append(batch)
        if done:
            await self.settle(done)

    async def settle(self, batches: list[LoopBatch]) -> None:
        """Carry out the actions for resolved batches: route poison, then one ack request. Never raises."""
        resolved: list[tuple[PulledMessage, Resolution]] = []
        for batch in batches:
            resolved.extend(zip(batch.messages, batch.resolutions(), strict=True))
        rule = self.plan.settle or self._checked_settle or SettleRule()
        plan = plan_advance(resolved, rule.on_rejected, self._message_retry_delay)
        acked = 0
        try:
            acked = await self._give_back(plan)
        except Exception:
            self.log.exception("Queue %s: settling failed; the messages come back when their lease expires", self.name)
        finally:
            self.in_flight -= len(resolved)
            self._hold_after(failed=sum(1 for _, r in resolved if r.failed), acked=acked)
            self._changed.set()

    def _hold_after(self, *, failed: int, acked: int) -> None:
        """After messages failed in Airflow, wait before pulling more: ``poll_interval``, doubling with each
        further failure, at most the ack timeout; the first settlement without failures ends the wait."""
        if not failed:
            if acked:
                self._hold = 0.0
            return
        poll = self.plan.pull.poll_interval if self.plan.pull else 5.0
        self._hold = min(max(poll, self._hold * 2), max(self.directory.ack_timeout, poll))
        self._hold_until = time.monotonic() + self._hold
        self.log.warning(
            "%d message(s) of queue %s failed in Airflow (their asset events may not have been stored): given "
            "back; pulling again in %g s",
            failed,
            self.name,
            self._hold,
        )

    async def _give_back(self, plan: AdvancePlan) -> int:
        """
        Route the plan's poison to the poison queue (in poison envelopes), then send one ack request
        (:func:`~..consume.fate.give_back`, as the drain does). A message whose copy was not
        confirmed is given back with the backoff, to be routed when it comes again. Returns how many
        messages were acked.
        """
        route = QueueRoute(
            self.hook,
            self._poison_queue_id or "",
            source=self.name,
            source_id=self.identity.queue_id,
            routed_by={
                "triggerer": self.directory.where,
                "assets": sorted({asset for spec in self.watchers.values() for asset in spec.assets}),
            },
        )
        flow = give_back(plan.acks, plan.retries, plan.poison, lambda m, _: (m, DEFAULT_BACKOFF.seconds(m.attempts)))
        try:
            done = await run_async(
                flow,
                route.aroute,
                lambda acks, retries: self.hook.aack_messages(queue=self.identity.queue_id, acks=acks, retries=retries),
            )
        except CloudflareQueuesAckError as err:
            self.log.warning(
                "Settling messages of queue %s failed part-way (%s): those not confirmed come back when their "
                "lease expires, and may reach the watchers twice",
                self.name,
                err,
            )
            return 0
        except CloudflareQueuesError as err:
            self.log.warning(
                "Settling %d message(s) of queue %s failed (%s): %s; they come back when their lease expires, "
                "and may reach the watchers twice",
                len(plan.acks) + len(plan.retries) + len(plan.poison),
                self.name,
                err,
                "the service may have applied it" if err.outcome_unknown else "nothing was applied",
            )
            return 0
        if done.unrouted:
            self.log.warning(
                "Routing %d message(s) of queue %s to its poison queue failed (%s): given back, to be routed when "
                "they come again",
                len(done.unrouted),
                self.name,
                "; ".join(sorted({error for _, error in done.unrouted})),
            )
        result = done.result
        if done.acks or done.retries:
            self.log.info("Settled queue %s: %s", self.name, plan.describe())
        if result.not_applied or result.unconfirmed:
            self.log.warning(
                "Queue %s: %d lease(s) not applied (their lease had run out: they come again) and %d unconfirmed",
                self.name,
                len(result.not_applied),
                len(result.unconfirmed),
            )
        return len(done.acks)


class Directory:
    """
    The queue loops of one process (one event loop), and where they publish themselves.

    :param store: the deployment-wide registry (default: Airflow Variables in a triggerer, memory
        elsewhere).
    :param where: this process, for people (default: host, pid).
    :param heartbeat: seconds between heartbeats.
    :param start_delay: seconds a new loop waits after publishing itself before its first pull, so that
        two processes starting together see each other (default: a heartbeat with a deployment-wide
        registry, none with one in memory).
    :param alive_for: seconds another loop stays alive after its heartbeat last moved.
    :param remembered_for: seconds the watchers of a stopped or dead loop are waited for.
    :param ack_timeout: Airflow's ``[triggerer] shared_stream_ack_timeout``.
    :param max_in_flight: messages a loop keeps leased and unsettled, at most.
    :param max_batches_in_flight: batches a loop keeps unsettled, at most.
    """

    def __init__(
        self,
        store: RegistryStore | None = None,
        *,
        where: str | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        start_delay: float | None = None,
        alive_for: float = ALIVE_FOR_SECONDS,
        remembered_for: float = REMEMBERED_FOR_SECONDS,
        ack_timeout: float = 300.0,
        max_in_flight: int = 1_000,
        max_batches_in_flight: int = 1_024,
    ) -> None:
        self.store = store if store is not None else default_store()
        self.where = where or f"{socket.gethostname()} pid {os.getpid()}"
        self.heartbeat = heartbeat
        self.start_delay = (
            start_delay if start_delay is not None else 0.0 if isinstance(self.store, MemoryStore) else heartbeat
        )
        self.alive_for = alive_for
        self.remembered_for = remembered_for
        self.ack_timeout = ack_timeout
        self.max_in_flight = max_in_flight
        self.max_batches_in_flight = max(1, max_batches_in_flight)
        self.loops: dict[QueueIdentity, QueueLoop] = {}
        #: loops closing (their last registry update and hook close), kept referenced until done
        self.closing: set[asyncio.Future[None]] = set()
        #: (conn id, account id, queue as spelled) -> (identity, name): resolved once, so a rename keeps one loop
        self.resolved: dict[tuple[str, str | None, str | None], tuple[QueueIdentity, str]] = {}

    def name_triggerer(self, job_id: object) -> None:
        """Add the triggerer's job id (known once a trigger runs) to this process's name."""
        if isinstance(job_id, int) and "triggerer job" not in self.where:
            self.where = f"{self.where} (triggerer job {job_id})"

    async def resolve(
        self, conn_id: str, account_id: str | None, queue: str | None
    ) -> tuple[QueueIdentity, str, CloudflareQueuesHook]:
        """The queue's identity and name, and a hook for it (raises on a wrong token or queue)."""
        hook = CloudflareQueuesHook(conn_id, queue=queue, account_id=account_id)
        try:
            settings = await hook.aget_settings()
            known = self.resolved.get((conn_id, account_id, queue))
            if known is None:
                answer = await hook.aget_queue()
                known = (QueueIdentity(settings.base_url, settings.account_id, answer.queue_id), answer.queue_name)
                self.resolved[conn_id, account_id, queue] = known
        except BaseException:
            await hook.aclose()
            raise
        return known[0], known[1], hook

    async def loop_for(self, conn_id: str, account_id: str | None, queue: str | None) -> QueueLoop:
        """The loop of the queue these name (made on first use, with this connection)."""
        identity, name, hook = await self.resolve(conn_id, account_id, queue)
        loop = self.loops.get(identity)
        if loop is None:
            loop = self.loops[identity] = QueueLoop(self, identity, name, hook)
        else:
            await hook.aclose()
        return loop

    def forget(self, loop: QueueLoop) -> None:
        if self.loops.get(loop.identity) is loop:
            del self.loops[loop.identity]
        if loop.error is not None:  # a queue deleted and made again under its name is resolved afresh
            for key, (identity, _) in list(self.resolved.items()):
                if identity == loop.identity:
                    del self.resolved[key]


_current_directory: contextvars.ContextVar[Directory | None] = contextvars.ContextVar(
    "cfqueues_directory", default=None
)
_directories: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Directory] = weakref.WeakKeyDictionary()


def current_directory(make: Callable[[], Directory] | None = None) -> Directory:
    """The directory of this event loop (or the one a test harness set for its tasks)."""
    chosen = _current_directory.get()
    if chosen is not None:
        return chosen
    event_loop = asyncio.get_running_loop()
    directory = _directories.get(event_loop)
    if directory is None:
        directory = _directories[event_loop] = (make or Directory)()
    return directory


@contextlib.contextmanager
def using_directory(directory: Directory) -> Iterator[None]:
    """Within the block, ``directory`` is the one of the tasks created (tests simulating processes)."""
    token = _current_directory.set(directory)
    try:
        yield
    finally:
        _current_directory.reset(token)
