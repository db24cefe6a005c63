"""
The drain loop behind :class:`~airflow_provider_cfqueues.operators.queues.CloudflareQueuesPullAndAckOperator`:
pull a batch, process each message (or the batch), then ack the successes and retry the failures in
one request. Several workers can drain in parallel; each holds only its own batch's leases.

Guarantees (``docs/operators.md`` and ``docs/reliability.md`` show them tested):

* a message is acked only after ``process`` returned for it (or it was routed as poison);
* ``process`` sees a message at most once per run: a failed message that comes back before the run
  ends is held, not processed again, and given back when the run ends;
* every delivery costs one of the message's attempts (Cloudflare deletes or dead-letters it after
  ``max_retries + 1``), so the drain reads the consumer's budget first, backs off failed messages
  (:data:`~airflow_provider_cfqueues.api.attempts.DEFAULT_BACKOFF`), starts each run with small
  batches, stops pulling after ``max_consecutive_failures`` failures in a row, and never gives back
  a message on its last delivery unprocessed;
* leases not acked or retried expire and their messages come back, so a killed task loses nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api.attempts import DEFAULT_BACKOFF, AttemptBudget
from ..api.errors import CloudflareQueuesDeliveryPausedError, CloudflareQueuesError, CloudflareQueuesValidationError
from ..api.models import PulledMessage
from ..api.units import delay_seconds
from ..hooks.queues import CloudflareQueuesHook
from .drain_plan import DrainPlan, DrainSummary, RetryDelay

#: seconds the task waits for its workers to hand back their leases after a timeout or kill
STOP_GRACE_SECONDS = 20.0

ProcessFn = Callable[..., Any]


class BatchResultError(CloudflareQueuesValidationError):
    """``process`` in batch mode reported failures that are not messages of its batch."""


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
    :param delay: the retry delay to give it back with.
    :param failed: ``process`` failed on this delivery (a retry); else it came back after failing
        earlier in the run and was not processed (a release).
    """

    message: PulledMessage
    deadline: float
    delay: float | None
    failed: bool


@dataclass
class _Outcomes:
    """What to send for one batch, and what to count once it was sent."""

    acks: list[PulledMessage] = field(default_factory=list)
    retries: list[tuple[PulledMessage, int | None]] = field(default_factory=list)
    released: list[tuple[PulledMessage, int | None]] = field(default_factory=list)
    failed: list[PulledMessage] = field(default_factory=list)
    poisoned: int = 0
    dead_lettered: int = 0
    deleted: int = 0


class Drainer:
    """
    Runs the drain loop with ``plan.concurrency`` workers.

    :param make_hook: returns a hook for one worker (each worker gets its own HTTP session).
    :param queue: queue id or name.
    :param plan: batch sizes, quotas, timeouts and retry policy.
    :param process: called as ``process(message, **kwargs)``, or ``process(messages, **kwargs)`` in
        batch mode (see :meth:`_match_failures` for what it may return).
    :param process_kwargs: keyword arguments for ``process``.
    :param on_poison: called as ``on_poison(message)`` for a message ``process`` has seen
        ``max_attempts`` times; acked when it returns.
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
        on_poison: Callable[[PulledMessage], Any] | None = None,
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
        self.budget = budget
        self.log = log
        self.clock = clock
        self.summary = DrainSummary()
        self._lock = threading.Lock()
        self._stop = threading.Event()  # no more pulls
        self._abort = threading.Event()  # and no more processing: give back what is in hand
        self._errors: list[BaseException] = []
        self._quota = _Quota(plan.max_messages, plan.max_batches)
        self._failed_ids: set[str] = set()
        self._held: dict[str, _Held] = {}  # message id -> its lease, kept until the run ends
        self._retried_ids: set[str] = set()  # failed in this run and retried: they come back later
        self._pulled_ids: set[str] = set()
        self._acked_ids: set[str] = set()
        self._consecutive_failures = 0
        self._poison_limit: int | None = None
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

    def _prepare(self, hook: CloudflareQueuesHook) -> None:
        if self.budget is None:
            self.budget = AttemptBudget.of(hook.get_queue(self.queue))
        budget = self.budget
        if self.on_poison is not None:
            limit = self.plan.max_attempts or budget.deliveries
            if limit > budget.deliveries:
                self.log.warning(
                    "max_attempts=%d is more than the %d deliveries the consumer allows (max_retries=%d): "
                    "poison messages are routed after %d attempts, before the service gives up on them",
                    limit,
                    budget.deliveries,
                    budget.max_retries,
                    budget.deliveries,
                )
                limit = budget.deliveries
            self._poison_limit = limit
        self.log.info(
            "Consumer budget: %d deliveries per message (max_retries=%d), then the service %s; failed "
            "messages come back after %s",
            budget.deliveries,
            budget.max_retries,
            budget.fate,
            _describe_delay(self.plan.retry_delay, budget),
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
                "attempts. A longer retry_delay avoids this",
                len(came_back),
            )
        try:
            result = hook.ack_messages(queue=self.queue, retries=retries)
        except CloudflareQueuesError as err:
            self.log.warning("Could not give back %d held message(s) (%s); their leases expire", len(due), err)
            return
        missed = result.not_applied
        with self._lock:
            self.summary.retried += sum(h.failed and h.message.lease_id not in missed for h in due)
            self.summary.released += sum(not h.failed and h.message.lease_id not in missed for h in due)
            self._retried_ids.update(h.message.id for h in due if h.message.lease_id not in missed)
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
                    with self._lock:  # this run's own failures come back after their delay: not waited for
                        in_flight = max(0, (result.backlog_count or 0) - len(self._retried_ids | set(self._held)))
                    if empty_since is None:
                        empty_since = self.clock()
                    if self.plan.stop_when_empty and (
                        in_flight == 0 or self.clock() - empty_since >= self.plan.wait_for_in_flight
                    ):
                        self.stop(
                            "the queue is empty"
                            if in_flight == 0
                            else f"nothing to pull; {in_flight} message(s) still leased or delayed"
                        )
                        return
                    time.sleep(self.plan.poll_interval)
                    continue
                empty_since = None
                with self._lock:
                    self.summary.pulled += len(result.messages)
                    self._pulled_ids.update(m.id for m in result.messages)
                    self.summary.batches += 1
                deadline = started + self.plan.visibility_timeout
                seconds_per_item, healthy = self._handle_batch(hook, result.messages, deadline, seconds_per_item)
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

    def _handle_batch(
        self, hook: CloudflareQueuesHook, messages: Sequence[PulledMessage], deadline: float, seconds_per_item: float
    ) -> tuple[float, bool]:
        """Process one batch and send its acks and retries; return the new pace and whether most of it succeeded."""
        out = _Outcomes()
        to_process: list[PulledMessage] = []
        for message in messages:
            if message.id in self._failed_ids and not self._budget.is_last_delivery(message.attempts):
                with self._lock:
                    self._held[message.id] = _Held(message, deadline, self._retry_delay(message), failed=False)
            elif self._poison_limit is not None and message.attempts > self._poison_limit:
                self._route_or_retry(message, out, None)
            else:
                to_process.append(message)
        self._warn_last_delivery([m for m in to_process if self._budget.is_last_delivery(m.attempts)])
        try:
            if self.plan.batch_mode:
                seconds_per_item = self._process_batch(to_process, out, seconds_per_item)
            else:
                seconds_per_item = self._process_messages(to_process, out, deadline, seconds_per_item)
        except BaseException:
            # interrupted in the task's own thread (timeout, kill): settle what was decided, give back the rest
            decided = {m.lease_id for m in out.acks} | {m.lease_id for m, _ in (*out.retries, *out.released)}
            out.released.extend((m, 0) for m in to_process if m.lease_id not in decided)
            self._send(hook, out, deadline, best_effort=True)
            raise
        self._send(hook, out, deadline)
        return seconds_per_item, len(out.failed) * 2 <= len(to_process)

    @property
    def _budget(self) -> AttemptBudget:
        assert self.budget is not None, "run() reads the budget first"
        return self.budget

    def _process_messages(
        self, messages: list[PulledMessage], out: _Outcomes, deadline: float, seconds_per_item: float
    ) -> float:
        pending = deque(messages)
        gave_back = False
        while pending:
            left = deadline - self.clock()
            if gave_back:
                why = ""
            elif self._abort.is_set():
                why = "the drain is stopping"
            elif left < seconds_per_item + self.plan.safety_margin:
                why = f"their leases expire in {max(0.0, left):.1f} s"
            else:
                why = ""
            if why:  # give back what can be; a message on its last delivery would be lost: process it
                gave_back = True
                last = [m for m in pending if self._budget.is_last_delivery(m.attempts)]
                self._release(out, [m for m in pending if not self._budget.is_last_delivery(m.attempts)], why)
                if last:
                    self.log.warning(
                        "Processing %d message(s) on their last delivery although %s: giving them back would "
                        "end them too",
                        len(last),
                        why,
                    )
                pending = deque(last)
                if not pending:
                    break
            message = pending.popleft()
            started = self.clock()
            try:
                self.process(message, **self.process_kwargs)
            except Exception as err:
                self._failed(message, err, out)
            else:
                out.acks.append(message)
                with self._lock:
                    self._consecutive_failures = 0
            elapsed = self.clock() - started
            seconds_per_item = elapsed if seconds_per_item == 0 else 0.7 * seconds_per_item + 0.3 * elapsed
        return seconds_per_item

    def _process_batch(self, messages: list[PulledMessage], out: _Outcomes, seconds_per_item: float) -> float:
        if not messages:
            return seconds_per_item
        started = self.clock()
        failures: dict[str, BaseException | None]
        try:
            returned = self.process(messages, **self.process_kwargs)
        except Exception as err:
            failures = {m.id: err for m in messages}
        else:
            try:
                failures = dict.fromkeys(self._match_failures(messages, returned))
            except BatchResultError as err:  # cannot tell what succeeded: ack nothing, fail the task
                with self._lock:
                    self._errors.append(err)
                self.stop("process() returned a batch result that does not name messages of its batch", error=True)
                failures = {m.id: err for m in messages}
            else:
                if len(failures) == len(messages) > 1:
                    self.log.warning(
                        "process() reported every message of the batch as failed. If it returned the messages "
                        "it processed, return the failed ones instead (or None when all succeeded)"
                    )
        elapsed = self.clock() - started
        seconds_per_item = elapsed if seconds_per_item == 0 else 0.7 * seconds_per_item + 0.3 * elapsed
        if len(failures) < len(messages):
            with self._lock:
                self._consecutive_failures = 0  # a batch that partly succeeded: process() works
        for message in messages:
            if message.id in failures:
                error = failures[message.id]
                self._failed(message, error or RuntimeError("reported as failed by process()"), out)
            else:
                out.acks.append(message)
        return seconds_per_item

    def _match_failures(self, messages: Sequence[PulledMessage], returned: object) -> set[str]:
        """
        The ids of the messages a batch ``process`` reported as failed. It returns ``None`` (or an empty
        collection) when all succeeded, or a collection of the failed messages: the ``PulledMessage``
        objects of this batch, or their ``id`` or ``lease_id`` strings. Anything else raises
        :class:`BatchResultError`, naming the items: nothing of the batch may be acked on a guess.
        """
        if returned is None:
            return set()
        if isinstance(returned, (str, bytes, dict, PulledMessage)) or not isinstance(returned, Iterable):
            raise BatchResultError(
                f"in batch mode, process() returns None (all succeeded) or a collection of the failed messages "
                f"(PulledMessage objects of the batch, or their id or lease_id), got {_describe(returned)}"
            )
        by_key: dict[str, str] = {}
        for message in messages:
            by_key[message.id] = message.id
            by_key[message.lease_id] = message.id
        failed: set[str] = set()
        unmatched: list[object] = []
        for item in returned:
            key = item.lease_id if isinstance(item, PulledMessage) else item
            message_id = by_key.get(key) if isinstance(key, str) else None
            if message_id is None:
                unmatched.append(item)
            else:
                failed.add(message_id)
        if unmatched:
            shown = ", ".join(_describe(item) for item in unmatched[:5])
            raise BatchResultError(
                f"process() reported {len(unmatched)} failure(s) that are not messages of this batch: {shown}"
                f"{', ...' if len(unmatched) > 5 else ''}. Return the failed PulledMessage objects, or their id "
                "or lease_id. No message of this batch was acked: all of them are retried"
            )
        return failed

    # -- outcomes ------------------------------------------------------------------------------

    def _failed(self, message: PulledMessage, error: BaseException, out: _Outcomes) -> None:
        """``process`` failed for ``message``: route it as poison, or retry it; count the run of failures."""
        text = f"{type(error).__name__}: {error}"
        with self._lock:
            if message.id not in self._failed_ids:
                self._failed_ids.add(message.id)
                self.summary.failed_ids.append(message.id)
            self.summary.last_errors.append(f"{message.id}: {text}")
            self._consecutive_failures += 1
            tripped = (
                self.plan.max_consecutive_failures is not None
                and self._consecutive_failures >= self.plan.max_consecutive_failures
                and not self.summary.tripped
            )
            if tripped:
                self.summary.tripped = True
        out.failed.append(message)
        if self._poison_limit is not None and message.attempts >= self._poison_limit:
            self._route_or_retry(message, out, text)
        else:
            self._retry_failed(message, out, text)
        if tripped:
            self.log.error(
                "%d messages failed in a row: stopping the drain so that the queue's other messages keep their "
                "delivery attempts until process() works again",
                self.plan.max_consecutive_failures,
            )
            self.stop(f"{self.plan.max_consecutive_failures} consecutive process() failures", abort=True)

    def _retry_failed(self, message: PulledMessage, out: _Outcomes, error: str | None) -> None:
        budget = self._budget
        of = f"attempt {message.attempts} of {budget.deliveries}"
        cause = f"process() failed for message {message.id} ({of}): {error}" if error else f"message {message.id}"
        if budget.is_last_delivery(message.attempts):
            self.log.error("%s; that was its last delivery: the service %s now", cause, budget.fate)
            if budget.dead_letter_queue:
                out.dead_lettered += 1
            else:
                out.deleted += 1
            out.retries.append((message, None))
            return
        delay = self._retry_delay(message)
        self.log.error(
            "%s; it comes back %s (%d deliveries left)",
            cause,
            "after the consumer's retry_delay" if delay is None else f"in {delay:g} s",
            budget.left_after(message.attempts),
        )
        out.retries.append((message, delay))

    def _route_or_retry(self, message: PulledMessage, out: _Outcomes, error: str | None) -> None:
        """Route a poison message; when routing fails, retry it (the service's budget still applies)."""
        assert self.on_poison is not None
        try:
            self.on_poison(message)
        except Exception as err:
            self.log.error("on_poison failed for message %s: %s: %s", message.id, type(err).__name__, err)
            self._retry_failed(message, out, error or f"on_poison failed: {type(err).__name__}: {err}")
            if message.id not in self._failed_ids:
                with self._lock:
                    self._failed_ids.add(message.id)
                    self.summary.failed_ids.append(message.id)
                out.failed.append(message)
            return
        self.log.warning(
            "Message %s reached %d attempt(s)%s: routed to on_poison and acked",
            message.id,
            message.attempts,
            f" (last error: {error})" if error else "",
        )
        out.acks.append(message)
        out.poisoned += 1

    def _release(self, out: _Outcomes, messages: list[PulledMessage], why: str) -> None:
        """Give messages back unprocessed: at once, or after their retry delay when process() is failing."""
        if not messages:
            return
        breaker = self.summary.tripped
        delay_of = self._retry_delay if breaker else (lambda m: 0)
        out.released.extend((m, delay_of(m)) for m in messages)
        self.log.warning(
            "Released %d message(s) unprocessed (%s)%s; each release spends one of the message's %d delivery "
            "attempts (these had used %s)%s",
            len(messages),
            why,
            ", to come back after their retry delay" if breaker else " for immediate redelivery",
            self._budget.deliveries,
            _attempt_range(messages),
            "" if self._abort.is_set() else ". Increase visibility_timeout or lower batch_size if this repeats",
        )

    def _send(self, hook: CloudflareQueuesHook, out: _Outcomes, deadline: float, *, best_effort: bool = False) -> None:
        """
        Send a batch's acks, retries and releases in one request, then count what the service applied.
        A failed message whose retry delay is shorter than the time left on its lease is not retried
        yet: its lease is kept until the run ends (:meth:`_give_back_held`), so that this run does not
        pull it again and spend another of its attempts.
        """
        now = self.clock()
        keep: list[_Held] = []
        retries: list[tuple[PulledMessage, int | None]] = []
        for message, delay in out.retries:
            wait = self._budget.retry_delay if delay is None else delay
            if not (best_effort or self._abort.is_set() or self._budget.is_last_delivery(message.attempts)) and (
                wait < deadline - now - self.plan.safety_margin
            ):
                keep.append(_Held(message, deadline, delay, failed=True))
            else:
                retries.append((message, delay))
        try:
            result = hook.ack_messages(queue=self.queue, acks=out.acks, retries=[*retries, *out.released])
        except CloudflareQueuesError as err:
            if not best_effort:
                raise
            self.log.warning("Could not settle the batch (%s); its leases expire and the messages come back", err)
            return
        missed = result.not_applied
        with self._lock:
            self._held.update((held.message.id, held) for held in keep)
            summary = self.summary
            summary.acked += sum(m.lease_id not in missed for m in out.acks)
            self._acked_ids.update(m.id for m in out.acks if m.lease_id not in missed)
            coming_back = [
                m for m, _ in retries if m.lease_id not in missed and not self._budget.is_last_delivery(m.attempts)
            ]
            summary.retried += len(coming_back)
            self._retried_ids.update(m.id for m in coming_back)
            summary.released += sum(m.lease_id not in missed for m, _ in out.released)
            summary.poisoned += out.poisoned
            summary.dead_lettered += out.dead_lettered
            summary.deleted += out.deleted
            summary.ack_warnings += len(result.warnings)

    def _retry_delay(self, message: PulledMessage) -> int | None:
        delay = self.plan.retry_delay
        if callable(delay):
            value = delay(message.attempts)
            try:
                return delay_seconds(value, f"retry_delay({message.attempts})")
            except CloudflareQueuesValidationError as err:
                with self._lock:
                    self._errors.append(err)
                self.stop("retry_delay returned an invalid delay", error=True)
                return DEFAULT_BACKOFF(message.attempts)
        return delay

    def _warn_last_delivery(self, messages: Sequence[PulledMessage]) -> None:
        """Before ``process`` runs: messages that nothing catches if it fails (no poison route, no DLQ)."""
        if not messages or self._poison_limit is not None or self._budget.dead_letter_queue:
            return
        self.log.warning(
            "%d message(s) on their last delivery (%s): if process() fails, the service %s",
            len(messages),
            ", ".join(m.id for m in messages[:5]) + (", ..." if len(messages) > 5 else ""),
            self._budget.fate,
        )


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"


def _attempt_range(messages: Sequence[PulledMessage]) -> str:
    attempts = sorted({m.attempts for m in messages})
    return str(attempts[0]) if len(attempts) == 1 else f"{attempts[0]}-{attempts[-1]}"


def _describe_delay(delay: RetryDelay, budget: AttemptBudget) -> str:
    if delay is None:
        return f"the consumer's retry_delay ({budget.retry_delay:g} s)"
    if callable(delay):
        try:
            steps = ", ".join(f"{delay(n)} s" for n in range(1, min(budget.deliveries, 4) + 1))
        except Exception:  # the user's callable: it fails the run when a message needs it, not here
            return repr(delay)
        return f"{steps}{', ...' if budget.deliveries > 4 else ''} ({delay!r})"
    return f"{delay:g} s"
