"""The drain operator: pull, process each message in the task, ack or retry it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._compat import AirflowException
from ..api.callables import resolve_callable
from ..api.errors import (
    CloudflareQueuesDeliveryPausedError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesValidationError,
)
from ..api.limits import MAX_PULL_BATCH_SIZE
from ..api.models import PulledMessage
from ..api.units import batch_size as read_batch_size
from ..api.units import count, duration, known_lease_seconds
from ..consume.attempts import MessageRetryDelay, resolve_message_retry_delay
from ..consume.drain import Drainer
from ..consume.drain_plan import DEFAULT_MAX_CONSECUTIVE_FAILURES, DrainPlan, DrainResult, DrainSummary
from ..consume.poison import CallableRoute, QueueRoute, Router, check_poison_queue
from ..hooks.queues import CloudflareQueuesHook
from .base import ON_PAUSED, QUEUE_TEMPLATE_FIELDS, CloudflareQueuesBaseOperator, choice, closes_hook

if TYPE_CHECKING:
    from airflow.sdk import Context


class CloudflareQueuesPullAndAckOperator(CloudflareQueuesBaseOperator):
    """
    Drain a Cloudflare queue inside one task, with a per-message outcome: each pulled message goes to
    ``process``; when it returns, the message is acked; when it raises, the message is retried after
    ``message_retry_delay``. A batch's acks and retries go out in one request, after the whole batch
    was processed. Delivery guarantees, the attempt budget, the circuit breaker and poison handling:
    ``docs/operators.md``. Returns :class:`~airflow_provider_cfqueues.consume.drain_plan.DrainResult`.

    :param process: a callable (or its dotted import path) called as ``process(message, **process_kwargs)``
        with a :class:`~airflow_provider_cfqueues.api.models.PulledMessage`. With ``process_mode="batch"``
        it is called as ``process(messages, **process_kwargs)`` and returns ``None`` when all succeeded,
        raises when the batch failed, or returns the failed messages (the ``PulledMessage`` objects, or
        their ``id`` or ``lease_id``; ``Rejected(message, reason)`` items to reject some); anything else
        fails the task and acks nothing of the batch. Raise ``RejectMessage(reason)`` to take a message
        (the batch, in batch mode) out of the flow at once: ``docs/operators.md``, "Rejecting a message".
    :param process_kwargs: keyword arguments for ``process`` (templated).
    :param process_mode: ``"message"`` (default) or ``"batch"``.
    :param cloudflare_queue: queue id or name (templated); default: the connection's ``queue`` extra.
    :param batch_size: the largest pull, 1 to 100 (templated). Each worker starts a run with pulls of
        at most ``max_consecutive_failures`` messages and doubles them while they succeed.
    :param max_messages: stop after this many messages (templated); default: until the queue is empty.
    :param max_batches: stop after this many pulls.
    :param visibility_timeout: how long pulled messages stay leased (``timedelta`` or seconds; up to 12 h);
        above ``batch_size`` x the time ``process`` takes per message.
    :param concurrency: parallel pullers in this task (``process`` must then be thread-safe).
    :param message_retry_delay: how long a failed message waits before it comes back: ``None``
        (default) for the provider's backoff (30 s after the first delivery, doubling, at most 1 h),
        seconds or a ``timedelta`` (``0``: at once), a callable of the message's attempt count
        returning seconds, or ``"consumer"`` for the consumer's own ``retry_delay``. Not to be
        confused with ``retry_delay=``, which stays Airflow's: the wait before the *task* runs again
        after it failed (coming from SQS or Pub/Sub, the message's delay is this one).
    :param max_consecutive_failures: after this many first-delivery failures in a row, stop pulling,
        give back the messages in hand, and fail the task (default 10; ``None`` never stops).
    :param fail_on_error: fail the task at the end when any message failed (they are retried either
        way; messages routed as poison are handled, not failed).
    :param on_poison: where a message goes that ``process`` failed for on its ``max_attempts``-th
        delivery (or that arrives with more), or that ``process`` rejected
        (:class:`~airflow_provider_cfqueues.consume.poison.RejectMessage`): the id or name of a queue to push
        it to in a poison envelope (templated; it must exist), or a callable (or dotted import path)
        called as ``on_poison(message)``, or ``on_poison(message, reason=...)`` when it takes ``reason``.
        Acked once routed. Without it, a rejected message's envelope goes to the consumer's
        dead-letter queue.
    :param max_attempts: with ``on_poison``: the deliveries ``process`` gets before a failure routes
        the message; default (and at most) every delivery the consumer allows.
    :param wait_for_in_flight: after an empty pull, keep polling for up to this long (``timedelta`` or
        seconds) while the backlog still counts messages leased elsewhere or delayed (e.g. leases
        orphaned by a lost answer). Default 0; ``None`` keeps polling, even when the queue is empty,
        until ``max_messages`` or ``max_batches`` is reached.
    :param on_paused: when the queue's delivery is paused (pulls get HTTP 409): ``"skip"`` the task
        (default), ``"fail"`` it, or ``"succeed"`` with what was done before; nothing more is pulled.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (
        *QUEUE_TEMPLATE_FIELDS,
        "process_kwargs",
        "batch_size",
        "max_messages",
        "on_poison",
    )
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        process: Callable[..., Any] | str,
        process_kwargs: dict[str, Any] | None = None,
        process_mode: str = "message",
        batch_size: int | str = MAX_PULL_BATCH_SIZE,
        max_messages: int | str | None = None,
        max_batches: int | None = None,
        visibility_timeout: timedelta | float = timedelta(minutes=5),
        concurrency: int = 1,
        message_retry_delay: float | timedelta | str | Callable[[int], float | None] | MessageRetryDelay | None = None,
        max_consecutive_failures: int | None = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        fail_on_error: bool = True,
        on_poison: str | Callable[[PulledMessage], Any] | None = None,
        max_attempts: int | None = None,
        wait_for_in_flight: timedelta | float | None = 0,
        on_paused: str = "skip",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if process is None:
            raise CloudflareQueuesValidationError(
                "process is needed: the callable each message is handed to. To return messages to XCom "
                "instead, use CloudflareQueuesPullOperator (ack=True acks them once stored)"
            )
        self.on_paused = choice(on_paused, ON_PAUSED, "on_paused")
        self.process_mode = choice(process_mode, ("message", "batch"), "process_mode")
        if concurrency < 1:
            raise CloudflareQueuesValidationError(f"concurrency must be at least 1, got {concurrency!r}")
        if max_attempts is not None and on_poison is None:
            raise CloudflareQueuesValidationError(
                "max_attempts needs on_poison: without a poison route, the consumer's max_retries and "
                "dead-letter queue decide what happens to a message that keeps failing"
            )
        #: resolved once, when the DAG is parsed (an error shows there); the argument is kept as given
        self._message_retry_delay = resolve_message_retry_delay(message_retry_delay)
        self.process = process
        self.process_kwargs = process_kwargs or {}
        self.batch_size = batch_size
        self.max_messages = max_messages
        self.max_batches = count(max_batches, "max_batches", low=1)
        self.visibility_timeout = known_lease_seconds(visibility_timeout)
        self.concurrency = concurrency
        self.message_retry_delay = message_retry_delay
        self.max_consecutive_failures = count(max_consecutive_failures, "max_consecutive_failures", low=1)
        self.fail_on_error = fail_on_error
        self.on_poison = on_poison
        self.max_attempts = count(max_attempts, "max_attempts", low=1)
        self.wait_for_in_flight = duration(wait_for_in_flight, "wait_for_in_flight")
        self._drainer: Drainer | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The queue as an input dataset (when the OpenLineage provider is installed)."""
        return self._lineage(reads=True)

    @closes_hook
    def execute(self, context: Context) -> DrainResult:
        max_messages = count(self.max_messages, "max_messages")
        if max_messages == 0:
            return DrainSummary(stop_reason="max_messages is 0").to_xcom()
        hook = self.hook
        queue = self.queue_ref
        plan = DrainPlan(
            batch_size=read_batch_size(self.batch_size) or MAX_PULL_BATCH_SIZE,
            max_messages=max_messages,
            max_batches=self.max_batches,
            visibility_timeout=self.visibility_timeout,
            concurrency=self.concurrency,
            batch_mode=self.process_mode == "batch",
            message_retry_delay=self._message_retry_delay,
            max_attempts=self.max_attempts,
            max_consecutive_failures=self.max_consecutive_failures,
            wait_for_in_flight=self.wait_for_in_flight,
        )
        process = resolve_callable(self.process, "process")
        assert process is not None
        ti = context.get("ti")
        routed_by = {
            "dag_id": self.dag_id,
            "task_id": self.task_id,
            "run_id": context.get("run_id"),
            "map_index": getattr(ti, "map_index", -1),
            "try_number": getattr(ti, "try_number", None),
        }
        self._drainer = drainer = Drainer(
            hook.worker_copy,
            queue,
            plan,
            process,
            process_kwargs=self.process_kwargs,
            on_poison=self._poison_route(hook, queue, routed_by),
            dead_letter_route=lambda dead_letter_queue: QueueRoute(
                hook, dead_letter_queue, source=queue, routed_by=routed_by
            ),
            log=self.log,
        )
        try:
            drainer.run()
        except CloudflareQueuesDeliveryPausedError as err:
            self._when_paused(err, self.on_paused, drainer.summary.describe())
        finally:
            summary = drainer.summary
            self.log.info(
                "Drained queue %s: %s; backlog after %s; stopped because %s",
                queue,
                summary.describe(),
                summary.backlog_after,
                summary.stop_reason or "a worker failed",
            )
        if summary.interrupted:
            raise AirflowException(f"The drain was stopped ({summary.stop_reason}): {summary.describe()}")
        if summary.tripped:
            raise AirflowException(
                f"Stopped pulling after {self.max_consecutive_failures} consecutive process() failures of messages "
                f"on their first delivery, so that the queue's other messages keep their delivery attempts. Last "
                f"errors: {'; '.join(summary.last_errors)}. This run: {summary.describe()}; backlog now "
                f"{summary.backlog_after}, of which {summary.untouched} never pulled (they keep all their "
                "delivery attempts). Fix what process() depends on: the next run carries on."
            )
        if summary.failed and self.fail_on_error:
            ids = ", ".join(summary.failed_ids[:20]) + (", ..." if summary.failed > 20 else "")
            raise AirflowException(
                f"{summary.failed} message(s) failed in process() (ids: {ids}). This run: {summary.describe()}. "
                f"Last errors: {'; '.join(summary.last_errors)}. Set fail_on_error=False to let the task "
                "succeed anyway."
            )
        return summary.to_xcom()

    def on_kill(self) -> None:
        """Stop the drain after the messages in hand (Airflow calls this on SIGTERM and on timeout)."""
        if self._drainer is not None:
            self._drainer.stop("the task was killed or timed out", interrupted=True)

    def _poison_route(self, hook: CloudflareQueuesHook, queue: str, routed_by: dict[str, Any]) -> Router | None:
        """``on_poison`` as a route: the user's callable, or a router to the poison queue once it is known
        to exist and not to be the drained queue."""
        route = self.on_poison
        if route is None:
            return None
        if callable(route):
            return CallableRoute(route)
        if not isinstance(route, str) or not route.strip():
            raise CloudflareQueuesValidationError(
                f"on_poison must be a queue id or name, or a callable (or its dotted import path); got {route!r}"
            )
        if "." in route:  # queue names have no dots: a dotted import path
            resolved = resolve_callable(route, "on_poison")
            assert resolved is not None
            return CallableRoute(resolved)
        try:
            poison_id: str | None = hook.resolve_queue_id(route)
        except CloudflareQueuesNotFoundError:
            poison_id = None
        check_poison_queue("on_poison", route, poison_id, hook.resolve_queue_id(queue), "drained")
        assert poison_id is not None
        return QueueRoute(hook, poison_id, source=queue, routed_by=routed_by)
