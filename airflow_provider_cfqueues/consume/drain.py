"""
The drain engine behind :class:`~airflow_provider_cfqueues.operators.consume.CloudflareQueuesPullAndAckOperator`:
workers that pull a batch, hand each message (or the batch) to ``process``, and send the batch's
acks, retries and releases in one request. What happens to each message is decided by
:class:`~airflow_provider_cfqueues.consume.fate.DrainPolicy` (pure); this module keeps the
threads, quotas, lease windows, pulls and sends.

Guarantees (``docs/operators.md`` and ``docs/reliability.md`` show them tested):

* a message is acked only after ``process`` returned for it (or it was routed as poison: after
  ``max_attempts``, or at once when ``process`` rejected it with ``RejectMessage``);
* ``process`` sees a message at most once per run: a failed message that comes back before the run
  ends is held, not processed again, and given back when the run ends;
* every delivery costs one of the message's attempts, so the drain reads the consumer's budget
  first, backs failed messages off, starts each run with small batches, stops pulling after
  ``max_consecutive_failures`` first-delivery failures in a row, and never gives back a message on
  its last delivery unprocessed;
* leases not acked or retried expire and their messages come back, so a killed task loses nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.errors import CloudflareQueuesConfigError, CloudflareQueuesDeliveryPausedError, CloudflareQueuesError
from ..api.models import PulledMessage
from .attempts import AttemptBudget
from .drain_plan import DrainPlan, DrainSummary
from .fate import (
    PULLED,
    SUCCEEDED,
    Action,
    BatchResultError,
    Breaker,
    Decision,
    Delivery,
    DrainPolicy,
    Fate,
    Outcome,
    Retry,
    batch_failures,
    give_back,
    run_sync,
)
from .poison import RejectMessage, Router

if TYPE_CHECKING:  # the hook is passed in: nothing here imports an Airflow class
    from ..hooks.queues import CloudflareQueuesHook

#: seconds the task waits for its workers to hand back their leases after a timeout or kill
STOP_GRACE_SECONDS = 20.0

ProcessFn = Callable[..., Any]


class _Quota:
    """Message and batch quotas shared by the workers."""

    def __init__(self, max_messages: int | None, max_batches: int | None) -> None:
        self._messages = max_messages
        self._batches = max_batches
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """Reserve a batch of up to ``wanted`` messages; 0 when a quota is spent."""
        with self._lock:
            if self._batches is not None:
                if self._batches <= 0:
                    return 0
                self._batches -= 1
            if self._messages is None:
                return wanted
            granted = min(wanted, self._messages)
            self._messages -= granted
            return granted

    def give_back(self, messages: int) -> None:
        with self._lock:
            if self._messages is not None:
                self._messages += messages


@dataclass(frozen=True)
class _Held:
    """
    A lease kept until the run ends, so that this run does not pull the message again.

    :param message: the delivery whose lease is kept.
    :param deadline: when the lease expires (drain clock).
    :param delay: the delay to give it back with.
    :param failed: ``process`` failed on this delivery (a retry); else it came back after failing
        earlier in the run and was not processed (a release).
    """

    message: PulledMessage
    deadline: float
    delay: int | None
    failed: bool


@dataclass
class _Batch:
    """One batch's decisions, sent together."""

    acks: list[PulledMessage] = field(default_factory=list)
    retries: list[tuple[PulledMessage, Decision]] = field(default_factory=list)
    released: list[tuple[PulledMessage, int | None]] = field(default_factory=list)
    poison: list[tuple[PulledMessage, Decision]] = field(default_factory=list)
    failed: int = 0

    def decided(self) -> set[str]:
        given_back = (*self.retries, *self.released, *self.poison)
        return {m.lease_id for m in self.acks} | {m.lease_id for m, _ in given_back}


class Drainer:
    """
    Runs the drain with ``plan.concurrency`` workers.

    :param make_hook: returns a hook for one worker (each worker gets its own HTTP session).
    :param queue: queue id or name.
    :param plan: batch sizes, quotas, timeouts and retry delay.
    :param process: called as ``process(message, **kwargs)``, or ``process(messages, **kwargs)`` in
        batch mode (see :func:`~.fate.batch_failures` for what it may return).
    :param process_kwargs: keyword arguments for ``process``.
    :param on_poison: where a message goes that ``process`` has seen ``max_attempts`` times, or
        rejected (:mod:`.poison`); acked once routed.
    :param dead_letter_route: without ``on_poison``, where a rejected message goes: called with the name
        of the consumer's dead-letter queue, returns the router that pushes a copy there.
    :param budget: the consumer's attempt budget; read from the queue when ``None``.
    :param log: where to log.
    :param clock: monotonic seconds (tests inject one).
    """

    def __init__(
        self,
        make_hook: Callable[[], CloudflareQueuesHook],
        queue: str | None,
        plan: DrainPlan,
        process: ProcessFn,
        *,
        process_kwargs: dict[str, Any] | None = None,
        on_poison: Router | None = None,
        dead_letter_route: Callable[[str], Router] | None = None,
        budget: AttemptBudget | None = None,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.make_hook = make_hook
        self.queue = queue
        self.plan = plan
        self.process = process
        self.process_kwargs = process_kwargs or {}
        self.on_poison = on_poison
        self.dead_letter_route = dead_letter_route
        self._reject_route: Router | None = None
        self._reject_where = ""
        self.budget = budget
        self.log = log
        self.clock = clock
        self.summary = DrainSummary()
        self._policy: DrainPolicy | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()  # no more pulls
        self._abort = threading.Event()  # and no more processing: give back what is in hand
        self._errors: list[BaseException] = []
        self._quota = _Quota(plan.max_messages, plan.max_batches)
        self._failed_ids: set[str] = set()  # process() failed for them in this run
        self._held: dict[str, _Held] = {}  # message id -> its lease, kept until the run ends
        self._given_back_ids: set[str] = set()  # retried or released in this run: they come back later
        self._pulled_ids: set[str] = set()
        self._acked_ids: set[str] = set()
        self._in_hand = 0  # messages this task's workers pulled and have not settled yet
        self._consecutive_failures = 0
        self._warned_fit = 0
        self._reason_final = False

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> DrainSummary:
        """Drain until a stop condition; raise the first fatal error after every worker stopped."""
        hook = self.make_hook()
        try:
            self._prepare(hook)
            interrupted = True
            try:
                self._run_workers()
                interrupted = False
            finally:
                self._finish_run(hook, read_backlog=not interrupted)
                self.summary.failed = len(self.summary.failed_ids)
        finally:
            hook.close()
        if self._errors:
            raise self._errors[0]
        return self.summary

    def stop(self, reason: str, *, abort: bool = False, interrupted: bool = False, error: bool = False) -> None:
        """
        Stop pulling (thread-safe; ``on_kill`` calls it). Workers finish their batch in hand, or, with
        ``abort`` (or ``interrupted``: a timeout or kill), stop after the message in hand and give the
        rest back. The reason of the first abort or ``error`` stands; otherwise the last worker to stop
        saw the final state and says why.
        """
        with self._lock:
            if not self._reason_final:
                self.summary.stop_reason = reason
                self._reason_final = abort or interrupted or error
            self.summary.interrupted |= interrupted
            self._stop.set()
            if abort or interrupted:
                self._abort.set()

    @property
    def policy(self) -> DrainPolicy:
        assert self._policy is not None, "run() reads the budget first"
        return self._policy

    def _prepare(self, hook: CloudflareQueuesHook) -> None:
        if self.budget is None:
            self.budget = AttemptBudget.of(hook.get_queue(self.queue))
        budget = self.budget
        poison_limit = None
        if self.on_poison is not None:
            poison_limit = self.plan.max_attempts or budget.deliveries
            if poison_limit > budget.deliveries:
                self.log.warning(
                    "max_attempts=%d is more than the %d deliveries the consumer allows (max_retries=%d): "
                    "poison messages are routed after %d attempts, before the service gives up on them",
                    poison_limit,
                    budget.deliveries,
                    budget.max_retries,
                    budget.deliveries,
                )
                poison_limit = budget.deliveries
        self._policy = DrainPolicy(budget, self.plan.message_retry_delay, poison_limit, self.plan.safety_margin)
        if self.on_poison is not None:
            self._reject_route, self._reject_where = self.on_poison, "on_poison"
        elif budget.dead_letter_queue and self.dead_letter_route is not None:
            self._reject_route = self.dead_letter_route(budget.dead_letter_queue)
            self._reject_where = f"the consumer's dead-letter queue {budget.dead_letter_queue}"
        self.log.info(
            "Consumer budget: %d deliveries per message (max_retries=%d), then the service %s; failed "
            "messages come back after %s",
            budget.deliveries,
            budget.max_retries,
            budget.fate,
            self.plan.message_retry_delay.describe(budget),
        )

    def _run_workers(self) -> None:
        if self.plan.concurrency == 1:
            self._worker()  # in the task's own thread: a timeout or kill interrupts process() itself
            return
        threads = [
            threading.Thread(target=self._worker, name=f"cfqueues-drain-{n}", daemon=True)
            for n in range(self.plan.concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException as interruption:  # a task timeout or SIGTERM arrives in this thread
            self.stop(f"the task was interrupted ({type(interruption).__name__})", interrupted=True)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            still = sum(thread.is_alive() for thread in threads)
            if still:
                self.log.error(
                    "%d worker(s) are still inside process() %.0f s after the interruption; their leases "
                    "expire and the messages come back",
                    still,
                    STOP_GRACE_SECONDS,
                )
            raise

    def _finish_run(self, hook: CloudflareQueuesHook, *, read_backlog: bool) -> None:
        """Give back the held messages, then read the backlog (after the last ack)."""
        self._give_back_held(hook, expiring_only=False)
        if not read_backlog:
            return
        try:
            backlog = hook.get_metrics(self.queue).backlog_count
        except CloudflareQueuesError as err:
            self.log.warning("Could not read the backlog after draining: %s", err)
            return
        self.summary.backlog_after = backlog
        self.summary.untouched = max(0, backlog - len(self._pulled_ids - self._acked_ids))

    def _give_back_held(self, hook: CloudflareQueuesHook, *, expiring_only: bool) -> None:
        """
        Give back the leases kept so that this run does not pull their messages again: at the end of
        the run with their retry delay, or, while the run goes on, just before a lease expires (an
        expiry would spend the attempt anyway) with a delay of at least one visibility timeout, so that
        the run pulls the message again no more often than holding it would.
        """
        now = self.clock()
        with self._lock:
            due = [
                held
                for held in self._held.values()
                if not expiring_only or held.deadline - now < self.plan.safety_margin + self.plan.poll_interval
            ]
            for held in due:
                del self._held[held.message.id]
        if not due:
            return
        floor = round(self.plan.visibility_timeout)
        retries = [(h.message, max(floor, h.delay or 0) if expiring_only else h.delay) for h in due]
        came_back = [h for h in due if not h.failed]
        if came_back:
            self.log.warning(
                "%d message(s) that failed earlier in this run came back before it ended (their retry delay is "
                "shorter than the run) and were held unprocessed: each of those deliveries spent one of its "
                "attempts. A longer message_retry_delay avoids this",
                len(came_back),
            )
        try:
            result = hook.ack_messages(queue=self.queue, retries=retries)
        except CloudflareQueuesError as err:
            self.log.warning("Could not give back %d held message(s) (%s); their leases expire", len(due), err)
            return
        applied = [h for h in due if h.message.lease_id not in result.not_applied]
        with self._lock:
            self.summary.retried += sum(h.failed for h in applied)
            self.summary.released += sum(not h.failed for h in applied)
            self._given_back_ids.update(h.message.id for h in applied)
            self.summary.ack_warnings += len(result.warnings)

    # -- one worker ----------------------------------------------------------------------------

    def _worker(self) -> None:
        hook = self.make_hook()
        seconds_per_item = 0.0  # moving average: seconds per message (per batch in batch mode)
        target = self.plan.first_batch_size
        empty_since: float | None = None
        try:
            while not self._stop.is_set():
                self._give_back_held(hook, expiring_only=True)
                batch_size = self._fit_batch_size(target, seconds_per_item)
                if batch_size == 0:
                    self.stop("visibility_timeout is too short for process(): increase it")
                    return
                wanted = self._quota.take(batch_size)
                if wanted == 0:
                    self.stop("max_messages or max_batches reached")
                    return
                started = self.clock()
                result = hook.pull_messages(
                    queue=self.queue, batch_size=wanted, visibility_timeout=self.plan.visibility_timeout
                )
                self._quota.give_back(wanted - len(result.messages))
                if not result.messages:
                    if empty_since is None:
                        empty_since = self.clock()
                    if self._stop_on_empty(result.backlog_count, self.clock() - empty_since):
                        return
                    time.sleep(self.plan.poll_interval)
                    continue
                empty_since = None
                with self._lock:
                    self.summary.pulled += len(result.messages)
                    self._pulled_ids.update(m.id for m in result.messages)
                    self.summary.batches += 1
                    self._in_hand += len(result.messages)
                deadline = started + self.plan.visibility_timeout
                try:
                    seconds_per_item, healthy = self._handle_batch(hook, result.messages, deadline, seconds_per_item)
                finally:
                    with self._lock:
                        self._in_hand -= len(result.messages)
                # grow while process() mostly works; start small again when most of a batch failed
                target = min(self.plan.batch_size, target * 2) if healthy else self.plan.first_batch_size
        except Exception as err:
            with self._lock:
                self._errors.append(err)
            paused = isinstance(err, CloudflareQueuesDeliveryPausedError)
            self.stop(
                "delivery of the queue is paused" if paused else f"a worker failed ({type(err).__name__})", error=True
            )
        except BaseException as interruption:  # a timeout or kill in the task's own thread: Airflow handles it
            self.stop(f"the task was interrupted ({type(interruption).__name__})", interrupted=True)
            raise
        finally:
            hook.close()

    def _stop_on_empty(self, backlog: int | None, empty_for: float) -> bool:
        """
        After an empty pull: stop when nothing is in flight elsewhere (the backlog, less this run's own
        messages: those in its workers' hands, held, or given back to come later), or once
        ``wait_for_in_flight`` has passed; ``wait_for_in_flight=None`` never stops here.
        """
        wait = self.plan.wait_for_in_flight
        if wait is None:
            return False
        with self._lock:
            own = self._in_hand + len((self._given_back_ids - self._acked_ids) | set(self._held))
            elsewhere = max(0, (backlog or 0) - own)
        if elsewhere and empty_for < wait:
            return False
        self.stop(
            "the queue is empty"
            if not elsewhere
            else f"nothing to pull; {elsewhere} message(s) still leased elsewhere or delayed "
            f"(wait_for_in_flight={wait:g} s)"
        )
        return True

    def _fit_batch_size(self, batch_size: int, seconds_per_item: float) -> int:
        """Shrink batches so that one fits in the lease window at the measured processing speed."""
        if seconds_per_item <= 0 or self.plan.batch_mode:
            return batch_size
        usable = self.plan.visibility_timeout - self.plan.safety_margin
        fits = int(usable // seconds_per_item)
        if fits >= batch_size:
            return batch_size
        if fits >= 1 and fits != self._warned_fit:
            self._warned_fit = fits
            self.log.warning(
                "process() takes %.2f s per message: only %d fit in the %.0f s visibility timeout; "
                "pulling %d at a time",
                seconds_per_item,
                fits,
                self.plan.visibility_timeout,
                fits,
            )
        return max(0, fits)

    def _delivery(self, message: PulledMessage) -> Delivery:
        with self._lock:
            failed_earlier = message.id in self._failed_ids
        return Delivery(message.id, message.attempts, failed_earlier)

    def _handle_batch(
        self, hook: CloudflareQueuesHook, messages: Sequence[PulledMessage], deadline: float, seconds_per_item: float
    ) -> tuple[float, bool]:
        """Process one batch and send its acks and retries; return the new pace and whether most of it succeeded."""
        batch = _Batch()
        to_process: list[PulledMessage] = []
        for message in messages:
            decision = self.policy.decide(self._delivery(message), PULLED)
            if decision.action is Action.HOLD:
                with self._lock:
                    self._held[message.id] = _Held(message, deadline, decision.delay, failed=False)
            elif decision.action is Action.POISON:
                self._apply(message, decision, batch)
            else:
                to_process.append(message)
        self._warn_last_delivery([m for m in to_process if self.policy.budget.is_last_delivery(m.attempts)])
        try:
            if self.plan.batch_mode:
                seconds_per_item = self._process_batch(to_process, batch, seconds_per_item)
            else:
                seconds_per_item = self._process_messages(to_process, batch, deadline, seconds_per_item)
        except BaseException:
            # interrupted in the task's own thread (timeout, kill): settle what was decided, give back the rest
            decided = batch.decided()
            batch.released.extend((m, 0) for m in to_process if m.lease_id not in decided)
            self._send(hook, batch, deadline, best_effort=True)
            raise
        self._send(hook, batch, deadline)
        return seconds_per_item, batch.failed * 2 <= len(to_process)

    def _process_messages(
        self, messages: list[PulledMessage], batch: _Batch, deadline: float, seconds_per_item: float
    ) -> float:
        pending = deque(messages)
        gave_back = False
        while pending:
            if not gave_back:
                left = deadline - self.clock()
                why = ""
                if self._abort.is_set():
                    why = "the drain is stopping"
                elif left < seconds_per_item + self.plan.safety_margin:
                    why = f"their leases expire in {max(0.0, left):.1f} s"
                if why:  # give back what can be; a message on its last delivery would be lost: process it
                    gave_back = True
                    pending = deque(self._give_back_unprocessed(list(pending), why, batch))
                    if not pending:
                        break
            message = pending.popleft()
            started = self.clock()
            try:
                self.process(message, **self.process_kwargs)
            except RejectMessage as rejection:
                outcome = self._rejection(rejection)
            except Exception as err:
                outcome = Outcome.failed(f"{type(err).__name__}: {err}")
            else:
                outcome = SUCCEEDED
            self._apply(message, self.policy.decide(self._delivery(message), outcome), batch)
            elapsed = self.clock() - started
            seconds_per_item = elapsed if seconds_per_item == 0 else 0.7 * seconds_per_item + 0.3 * elapsed
        return seconds_per_item

    def _process_batch(self, messages: list[PulledMessage], batch: _Batch, seconds_per_item: float) -> float:
        if not messages:
            return seconds_per_item
        started = self.clock()
        failures: dict[str, Outcome]
        try:
            returned = self.process(messages, **self.process_kwargs)
        except RejectMessage as rejection:
            failures = dict.fromkeys((m.id for m in messages), self._rejection(rejection))
        except Exception as err:
            failures = dict.fromkeys((m.id for m in messages), Outcome.failed(f"{type(err).__name__}: {err}"))
        else:
            try:
                failures = batch_failures(messages, returned)
            except BatchResultError as err:  # cannot tell what succeeded: ack nothing, fail the task
                with self._lock:
                    self._errors.append(err)
                self.stop("process() returned a batch result that does not name messages of its batch", error=True)
                failures = dict.fromkeys((m.id for m in messages), Outcome.failed(f"{type(err).__name__}: {err}"))
            else:
                if len(failures) == len(messages) > 1:
                    self.log.warning(
                        "process() reported every message of the batch as failed. If it returned the messages "
                        "it processed, return the failed ones instead (or None when all succeeded)"
                    )
        elapsed = self.clock() - started
        seconds_per_item = elapsed if seconds_per_item == 0 else 0.7 * seconds_per_item + 0.3 * elapsed
        # successes first: a batch that partly succeeded shows that process() works
        for message in sorted(messages, key=lambda m: m.id in failures):
            outcome = failures.get(message.id, SUCCEEDED)
            if outcome.kind == "rejected" and self._reject_route is None:
                outcome = self._rejection(RejectMessage(outcome.detail))
            self._apply(message, self.policy.decide(self._delivery(message), outcome), batch)
        return seconds_per_item

    def _rejection(self, rejection: RejectMessage) -> Outcome:
        """
        ``process`` rejected a message: route it at once when there is somewhere to route it; else fail
        the task (once) and retry the message like any failure, acking nothing on a guess.
        """
        if self._reject_route is not None:
            return Outcome.rejected(rejection.reason)
        error = CloudflareQueuesConfigError(
            f"process() rejected a message ({rejection.reason}), but there is nowhere to route it: the drain has no "
            "on_poison and the consumer no dead-letter queue. The message is retried like a failure. Set "
            "on_poison=<queue or callable>, or give the consumer a dead-letter queue"
        )
        with self._lock:
            first = not any(isinstance(e, CloudflareQueuesConfigError) for e in self._errors)
            if first:
                self._errors.append(error)
        if first:
            self.stop("process() rejected a message with nowhere to route it", error=True)
        return Outcome.failed(f"RejectMessage: {rejection.reason} (nowhere to route it)")

    # -- carrying decisions out ----------------------------------------------------------------

    def _apply(self, message: PulledMessage, decision: Decision, batch: _Batch) -> None:
        """Carry out the decision for one message (routing to poison is the only I/O here)."""
        if decision.log:
            self.log.log(decision.level, "%s", decision.log[0].upper() + decision.log[1:])
        self._count(decision)
        if decision.action is Action.ACK:
            batch.acks.append(message)
        elif decision.action is Action.POISON:
            batch.poison.append((message, decision))  # routed when the batch is given back
        elif decision.action is Action.RETRY:
            batch.retries.append((message, decision))
            self._failed(message, decision, batch)
        elif decision.action is Action.RELEASE:
            batch.released.append((message, decision.delay))
        else:  # pragma: no cover - PROCESS and HOLD are handled where they are decided
            raise AssertionError(decision)

    def _count(self, decision: Decision) -> None:
        """The run of consecutive failures: trip the breaker when it is long enough."""
        limit = self.plan.max_consecutive_failures
        with self._lock:
            if decision.breaker is Breaker.RESETS:
                self._consecutive_failures = 0
                return
            if decision.breaker is not Breaker.COUNTS:
                return
            self._consecutive_failures += 1
            if limit is None or self._consecutive_failures < limit or self.summary.tripped:
                return
            self.summary.tripped = True
        self.log.error(
            "%d messages failed in a row on their first delivery: stopping the drain so that the queue's other "
            "messages keep their delivery attempts until process() works again",
            limit,
        )
        self.stop(f"{limit} consecutive process() failures", abort=True)

    def _failed(self, message: PulledMessage, decision: Decision, batch: _Batch) -> None:
        batch.failed += 1
        with self._lock:
            if message.id not in self._failed_ids:
                self._failed_ids.add(message.id)
                self.summary.failed_ids.append(message.id)
            self.summary.last_errors.append(f"{message.id}: {decision.error}")

    def _route(self, poison: Sequence[tuple[PulledMessage, str]], rejected: set[str]) -> dict[str, str]:
        """Route poison: rejections to the rejection route, the rest to ``on_poison``; what failed, and why."""
        failed: dict[str, str] = {}
        for router, where, part in (
            (self._reject_route, self._reject_where, [p for p in poison if p[0].lease_id in rejected]),
            (self.on_poison, "on_poison", [p for p in poison if p[0].lease_id not in rejected]),
        ):
            if not part:
                continue
            assert router is not None, where
            failed.update(router.route(part))
        return failed

    def _give_back_unprocessed(self, messages: list[PulledMessage], why: str, batch: _Batch) -> list[PulledMessage]:
        """Release what can be given back unprocessed; return the messages that must be processed anyway."""
        outcome = Outcome.unprocessed(why, breaker_tripped=self.summary.tripped)
        keep: list[PulledMessage] = []
        released: list[PulledMessage] = []
        for message in messages:
            decision = self.policy.decide(self._delivery(message), outcome)
            if decision.action is Action.PROCESS:
                keep.append(message)
                self.log.log(decision.level, "%s", decision.log[0].upper() + decision.log[1:])
            else:
                self._apply(message, decision, batch)
                released.append(message)
        if released:
            self.log.warning(
                "Released %d message(s) unprocessed (%s)%s; each release spends one of the message's %d delivery "
                "attempts (these had used %s)%s",
                len(released),
                why,
                ", to come back after their retry delay" if outcome.breaker_tripped else " for immediate redelivery",
                self.policy.budget.deliveries,
                _attempt_range(released),
                "" if self._abort.is_set() else ". Increase visibility_timeout or lower batch_size if this repeats",
            )
        return keep

    def _send(self, hook: CloudflareQueuesHook, batch: _Batch, deadline: float, *, best_effort: bool = False) -> None:
        """
        Give the batch back (:func:`.fate.give_back`): route its poison, then send its acks, retries
        and releases in one request, and count what the service applied. A retry the rules settle as
        held keeps its lease until the run ends (:meth:`_give_back_held`); so does a poison message whose
        routing failed, when its retry would be held.
        """
        seconds_left = deadline - self.clock()
        stopping = best_effort or self._abort.is_set()
        keep: list[_Held] = []
        sent: dict[str, Decision] = {}  # lease id -> the decision of each retry sent

        def settled(message: PulledMessage, decision: Decision) -> Retry | None:
            final = self.policy.settle(decision, self._delivery(message), seconds_left, stopping=stopping)
            if final.action is Action.HOLD:
                keep.append(_Held(message, deadline, final.delay, failed=True))
                return None
            sent[message.lease_id] = final
            return message, final.delay

        def unrouted(message: PulledMessage, error: str) -> Retry | None:
            decision = self.policy.decide(self._delivery(message), Outcome.routing_failed(error))
            if decision.log:
                self.log.log(decision.level, "%s", decision.log[0].upper() + decision.log[1:])
            self._count(decision)
            self._failed(message, decision, batch)
            return settled(message, decision)

        retries = [retry for m, d in batch.retries if (retry := settled(m, d)) is not None]
        rejected = {m.lease_id for m, d in batch.poison if d.rejected}
        flow = give_back(batch.acks, [*retries, *batch.released], [(m, d.error) for m, d in batch.poison], unrouted)
        try:
            done = run_sync(
                flow,
                lambda poison: self._route(poison, rejected),
                lambda acks, retries: hook.ack_messages(queue=self.queue, acks=acks, retries=retries),
            )
        except CloudflareQueuesError as err:
            if not best_effort:
                raise
            self.log.warning("Could not settle the batch (%s); its leases expire and the messages come back", err)
            return
        missed = done.result.not_applied
        released = {m.lease_id for m, _ in batch.released}
        with self._lock:
            self._held.update((held.message.id, held) for held in keep)
            summary = self.summary
            summary.acked += sum(m.lease_id not in missed for m in done.acks)
            self._acked_ids.update(m.id for m in done.acks if m.lease_id not in missed)
            for message in done.routed:  # handled: not a failure of this run
                if message.lease_id in rejected:
                    summary.rejected += 1
                else:
                    summary.poisoned += 1
                if message.id in self._failed_ids and message.id in summary.failed_ids:
                    summary.failed_ids.remove(message.id)
            for message, _ in done.retries:
                if message.lease_id in missed:
                    continue
                if message.lease_id in released:
                    summary.released += 1
                    self._given_back_ids.add(message.id)
                    continue
                fate = sent[message.lease_id].fate
                summary.retried += fate is Fate.COMES_BACK
                summary.dead_lettered += fate is Fate.DEAD_LETTERED
                summary.deleted += fate is Fate.DELETED
                if fate is Fate.COMES_BACK:
                    self._given_back_ids.add(message.id)
            summary.ack_warnings += len(done.result.warnings)

    def _warn_last_delivery(self, messages: Sequence[PulledMessage]) -> None:
        """Before ``process`` runs: messages that nothing catches if it fails (no poison route, no DLQ)."""
        policy = self.policy
        if not messages or policy.poison_limit is not None or policy.budget.dead_letter_queue:
            return
        self.log.warning(
            "%d message(s) on their last delivery (%s): if process() fails, the service %s",
            len(messages),
            ", ".join(m.id for m in messages[:5]) + (", ..." if len(messages) > 5 else ""),
            policy.budget.fate,
        )


def _attempt_range(messages: Sequence[PulledMessage]) -> str:
    attempts = sorted({m.attempts for m in messages})
    return str(attempts[0]) if len(attempts) == 1 else f"{attempts[0]}-{attempts[-1]}"
