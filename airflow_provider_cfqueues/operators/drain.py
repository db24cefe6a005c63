"""
The drain loop behind :class:`~airflow_provider_cfqueues.operators.queues.CloudflareQueuesPullAndAckOperator`:
pull a batch, process each message (or the batch), then ack the successes and retry the failures in
one request. Several workers can drain in parallel; each holds only its own batch's leases.

Guarantees: a message is acked only after ``process`` returned for it; a failure is retried (never
acked); leases not acked or retried expire and their messages come back, so a killed task loses
nothing. When the time left on a batch's leases is too short to process the next message, the rest
of the batch is released at once (retried with no delay) instead of being processed after its lease
expired, and the worker pulls smaller batches from then on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..api.errors import CloudflareQueuesError, CloudflareQueuesValidationError
from ..api.models import OutgoingMessage, PulledMessage
from ..hooks.queues import CloudflareQueuesHook

#: the longest list of failed message ids kept in the XCom summary
MAX_FAILED_IDS_IN_XCOM = 100

RetryDelay = float | Callable[[int], float | None] | None
ProcessFn = Callable[..., Any]


@dataclass
class DrainSummary:
    """
    What one drain did; :meth:`to_xcom` is the operator's return value.

    :param pulled: messages delivered to this drain.
    :param acked: messages acknowledged (processed, or routed as poison).
    :param retried: messages retried because ``process`` failed for them.
    :param failed: ``process`` failures.
    :param poisoned: messages routed to ``on_poison`` / ``poison_queue``.
    :param released: messages given back unprocessed because their lease was about to expire.
    :param batches: pulls that returned messages.
    :param ack_warnings: warnings the API returned for acks.
    :param failed_ids: ids of the messages that failed.
    :param backlog_after: the backlog the last pull reported.
    :param stop_reason: why the drain stopped.
    """

    pulled: int = 0
    acked: int = 0
    retried: int = 0
    failed: int = 0
    poisoned: int = 0
    released: int = 0
    batches: int = 0
    ack_warnings: int = 0
    failed_ids: list[str] = field(default_factory=list)
    backlog_after: int | None = None
    stop_reason: str = ""

    def to_xcom(self) -> dict[str, Any]:
        return {
            "pulled": self.pulled,
            "acked": self.acked,
            "retried": self.retried,
            "failed": self.failed,
            "poisoned": self.poisoned,
            "released": self.released,
            "batches": self.batches,
            "ack_warnings": self.ack_warnings,
            "failed_ids": self.failed_ids[:MAX_FAILED_IDS_IN_XCOM],
            "failed_ids_truncated": len(self.failed_ids) > MAX_FAILED_IDS_IN_XCOM,
            "backlog_after": self.backlog_after,
            "stop_reason": self.stop_reason,
        }


@dataclass
class DrainPlan:
    """
    How to drain (the operator's arguments, validated).

    :param batch_size: messages per pull.
    :param max_messages: stop after this many messages (all workers together).
    :param max_batches: stop after this many pulls (all workers together).
    :param visibility_timeout: lease duration in seconds.
    :param concurrency: workers.
    :param stop_when_empty: stop at an empty pull (see ``wait_for_in_flight``).
    :param batch_mode: call ``process`` once per batch.
    :param retry_delay: seconds, a callable of the attempt count, or ``None`` for the consumer's.
    :param max_attempts: deliveries after which a message is poison.
    :param wait_for_in_flight: seconds to keep polling after an empty pull while the backlog is not 0.
    :param poll_interval: seconds between such polls.
    """

    batch_size: int = 100
    max_messages: int | None = None
    max_batches: int | None = None
    visibility_timeout: float = 300.0  # seconds
    concurrency: int = 1
    stop_when_empty: bool = True
    batch_mode: bool = False
    retry_delay: RetryDelay = None
    max_attempts: int | None = None
    wait_for_in_flight: float = 0.0  # seconds to keep polling after an empty pull while the backlog is not 0
    poll_interval: float = 1.0

    @property
    def safety_margin(self) -> float:
        """Seconds kept free at the end of a lease for the ack request."""
        return min(30.0, max(0.5, 0.1 * self.visibility_timeout))


class _Budget:
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


class Drainer:
    """
    Runs the drain loop with ``plan.concurrency`` workers.

    :param make_hook: returns a hook for one worker (each worker gets its own HTTP session).
    :param queue: queue id or name.
    :param plan: batch sizes, quotas, timeouts and retry policy.
    :param process: called as ``process(message, **kwargs)``, or ``process(messages, **kwargs)`` in
        batch mode (where it may return the messages or ids that failed).
    :param on_poison: called as ``on_poison(message)`` for a message delivered more than
        ``plan.max_attempts`` times, instead of ``process``; acked when it returns.
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
        log: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.make_hook = make_hook
        self.queue = queue
        self.plan = plan
        self.process = process
        self.process_kwargs = process_kwargs or {}
        self.on_poison = on_poison
        self.log = log
        self.clock = clock
        self.summary = DrainSummary()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._budget = _Budget(plan.max_messages, plan.max_batches)

    def run(self) -> DrainSummary:
        """Drain until a stop condition; raise the first fatal error after every worker stopped."""
        if self.plan.concurrency == 1:
            self._worker(0)
        else:
            with ThreadPoolExecutor(self.plan.concurrency, thread_name_prefix="cfqueues-drain") as pool:
                for future in [pool.submit(self._worker, n) for n in range(self.plan.concurrency)]:
                    future.result()
        if self._errors:
            raise self._errors[0]
        return self.summary

    # -- one worker --------------------------------------------------------------------------

    def _worker(self, number: int) -> None:
        hook = self.make_hook()
        seconds_per_item = 0.0  # moving average: seconds per message (per batch in batch mode)
        batch_size = self.plan.batch_size
        empty_since: float | None = None
        try:
            while not self._stop.is_set():
                batch_size = self._fit_batch_size(batch_size, seconds_per_item)
                if batch_size == 0:
                    self._finish("visibility_timeout is too short for process(): increase it")
                    return
                wanted = self._budget.take(batch_size)
                if wanted == 0:
                    self._finish("max_messages or max_batches reached")
                    return
                started = self.clock()
                result = hook.pull_messages(
                    queue=self.queue, batch_size=wanted, visibility_timeout=self.plan.visibility_timeout * 1000
                )
                self._budget.give_back(wanted - len(result.messages))
                with self._lock:
                    self.summary.backlog_after = result.backlog_count
                if not result.messages:
                    in_flight = result.backlog_count or 0
                    if empty_since is None:
                        empty_since = self.clock()
                    if self.plan.stop_when_empty and (
                        in_flight == 0 or self.clock() - empty_since >= self.plan.wait_for_in_flight
                    ):
                        self._finish(
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
                    self.summary.batches += 1
                deadline = started + self.plan.visibility_timeout
                seconds_per_item = self._handle_batch(hook, result.messages, deadline, seconds_per_item)
        except BaseException as err:
            with self._lock:
                self._errors.append(err)
            self._stop.set()
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
        if fits >= 1:
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
    ) -> float:
        acks: list[PulledMessage] = []
        retries: list[tuple[PulledMessage, float | None]] = []
        failed: list[str] = []
        poisoned = released = 0
        to_process: list[PulledMessage] = []
        for message in messages:
            if self.plan.max_attempts is not None and message.attempts > self.plan.max_attempts:
                if self._route_poison(message):
                    acks.append(message)
                    poisoned += 1
                else:
                    retries.append((message, self._retry_delay(message)))
                    failed.append(message.id)
            else:
                to_process.append(message)
        if self.plan.batch_mode:
            if to_process:
                started = self.clock()
                failures = self._process_batch(to_process)
                elapsed = self.clock() - started
                seconds_per_item = elapsed if seconds_per_item == 0 else 0.7 * seconds_per_item + 0.3 * elapsed
                for message in to_process:
                    if message.id in failures:
                        retries.append((message, self._retry_delay(message)))
                        failed.append(message.id)
                    else:
                        acks.append(message)
        else:
            for position, message in enumerate(to_process):
                if deadline - self.clock() < seconds_per_item + self.plan.safety_margin:
                    rest = to_process[position:]
                    retries.extend((m, 0) for m in rest)
                    released = len(rest)
                    self.log.warning(
                        "The leases of this batch expire in %.1f s, too soon to process %d more message(s): "
                        "released them for redelivery; increase visibility_timeout or lower batch_size",
                        max(0.0, deadline - self.clock()),
                        released,
                    )
                    break
                started = self.clock()
                try:
                    self.process(message, **self.process_kwargs)
                except Exception as err:
                    self.log.error(
                        "process() failed for message %s (attempt %d): %s: %s; it will be retried",
                        message.id,
                        message.attempts,
                        type(err).__name__,
                        err,
                    )
                    retries.append((message, self._retry_delay(message)))
                    failed.append(message.id)
                else:
                    acks.append(message)
                elapsed = self.clock() - started
                seconds_per_item = elapsed if seconds_per_item == 0 else 0.7 * seconds_per_item + 0.3 * elapsed
        result = hook.ack_messages(queue=self.queue, acks=acks, retries=retries)
        with self._lock:
            self.summary.acked += len(acks)
            self.summary.retried += len(retries) - released
            self.summary.released += released
            self.summary.failed += len(failed)
            self.summary.poisoned += poisoned
            self.summary.failed_ids.extend(failed)
            self.summary.ack_warnings += len(result.warnings)
        return seconds_per_item

    def _process_batch(self, messages: list[PulledMessage]) -> set[str]:
        """Run ``process`` on a batch; return the ids that failed."""
        try:
            returned = self.process(messages, **self.process_kwargs)
        except Exception as err:
            self.log.error(
                "process() failed for a batch of %d message(s) (%s): %s: %s; all will be retried",
                len(messages),
                ", ".join(m.id for m in messages[:5]) + (", ..." if len(messages) > 5 else ""),
                type(err).__name__,
                err,
            )
            return {m.id for m in messages}
        if returned is None:
            return set()
        if not isinstance(returned, Iterable) or isinstance(returned, (str, bytes)):
            raise CloudflareQueuesValidationError(
                "in batch mode, process() returns None (all succeeded) or the messages or ids that failed, "
                f"got {type(returned).__name__}"
            )
        failures = {item.id if isinstance(item, PulledMessage) else str(item) for item in returned}
        for message in messages:
            if message.id in failures:
                self.log.error("process() reported message %s (attempt %d) as failed", message.id, message.attempts)
        return failures

    def _route_poison(self, message: PulledMessage) -> bool:
        if self.on_poison is None:
            return False
        try:
            self.on_poison(message)
        except Exception as err:
            self.log.error(
                "on_poison failed for message %s: %s: %s; it will be retried", message.id, type(err).__name__, err
            )
            return False
        self.log.warning("Message %s reached %d attempts: routed to on_poison", message.id, message.attempts)
        return True

    def _retry_delay(self, message: PulledMessage) -> float | None:
        delay = self.plan.retry_delay
        if callable(delay):
            return delay(message.attempts)
        return delay

    def _finish(self, reason: str) -> None:
        with self._lock:  # the last worker to stop saw the final state
            self.summary.stop_reason = reason


def poison_queue_router(hook: CloudflareQueuesHook, queue: str) -> Callable[[PulledMessage], None]:
    """An ``on_poison`` that pushes the message to another queue (bytes/v8 bodies wrapped in JSON)."""

    def route(message: PulledMessage) -> None:
        if message.content_type in ("text", "json") and message.decode_error is None:
            body: Any = message.body
            content_type: str = message.content_type
        else:
            body = {"raw_body": message.raw_body, "content_type": message.content_type}
            content_type = "json"
        hook.push_message(OutgoingMessage(body=body, content_type=content_type), queue=queue)  # type: ignore[arg-type]

    return route


class XComLimitError(CloudflareQueuesValidationError):
    """The messages would not fit in the XCom size limit (XCom is not a data channel)."""


def collect_messages(
    hook: CloudflareQueuesHook,
    queue: str | None,
    *,
    batch_size: int,
    max_messages: int | None,
    max_batches: int | None,
    visibility_timeout: float,
    max_xcom_bytes: int,
    lease: bool,
    log: Any,
) -> tuple[list[PulledMessage], list[dict[str, Any]], int | None]:
    """
    Pull until the queue is empty or a quota is reached, keeping every lease; return the messages,
    their XCom form and the last backlog count. Past ``max_xcom_bytes`` every lease taken is
    released (retried at once) and :class:`XComLimitError` is raised: nothing is lost.
    """
    messages: list[PulledMessage] = []
    payload: list[dict[str, Any]] = []
    size = 2
    backlog: int | None = None
    batches = 0
    while max_batches is None or batches < max_batches:
        wanted = batch_size if max_messages is None else min(batch_size, max_messages - len(messages))
        if wanted <= 0:
            break
        result = hook.pull_messages(queue=queue, batch_size=wanted, visibility_timeout=visibility_timeout * 1000)
        backlog = result.backlog_count
        if not result.messages:
            break
        batches += 1
        messages.extend(result.messages)
        for message in result.messages:
            item = message.to_xcom(lease=lease)
            payload.append(item)
            size += len(json.dumps(item)) + 1
        if size > max_xcom_bytes:
            hook.ack_messages(queue=queue, retries=[(m, 0) for m in messages])
            raise XComLimitError(
                f"{len(messages)} message(s) take about {size:,} bytes as XCom, over max_xcom_bytes="
                f"{max_xcom_bytes:,}; their leases were released, nothing was lost. XCom is not a data "
                "channel: lower max_messages, or process the messages inside the task with process="
            )
    log.info("Pulled %d message(s) in %d batch(es); backlog %s", len(messages), batches, backlog)
    return messages, payload, backlog


def release_on_error(
    hook: CloudflareQueuesHook, queue: str | None, messages: Sequence[PulledMessage], log: Any, error: BaseException
) -> None:
    """Best effort: give leases back at once after a failure (they would come back on expiry anyway)."""
    if not messages:
        return
    try:
        hook.ack_messages(queue=queue, retries=[(m, 0) for m in messages])
        log.warning("Released %d lease(s) after %s", len(messages), type(error).__name__)
    except CloudflareQueuesError as release_error:
        log.warning("Could not release %d lease(s) (%s); they come back when they expire", len(messages), release_error)
