"""
Operators for Cloudflare Queues: push, drain with per-message ack/retry, and the split
pull -> (your tasks) -> ack pattern. All of them talk to the API through
:class:`~airflow_provider_cfqueues.hooks.queues.CloudflareQueuesHook`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._compat import AirflowException, AirflowSkipException, BaseOperator, import_string
from ..api.attempts import resolve_retry_delay
from ..api.errors import (
    CloudflareQueuesConfigError,
    CloudflareQueuesDeliveryPausedError,
    CloudflareQueuesError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesValidationError,
)
from ..api.limits import MAX_PULL_BATCH_SIZE
from ..api.models import AckResult, OutgoingMessage, PulledMessage
from ..api.operations import is_queue_id, lease_texts, normalize_acks
from ..api.units import batch_size as read_batch_size
from ..api.units import count, delay_seconds, duration, known_lease_seconds
from ..hooks.queues import CloudflareQueuesHook
from ._arguments import base_partial, rename_partial_kwargs, take_renamed
from .drain import Drainer
from .drain_plan import DEFAULT_MAX_CONSECUTIVE_FAILURES, DrainPlan, DrainSummary
from .leases import collect_messages, poison_queue_router, release_on_error

if TYPE_CHECKING:
    from airflow.sdk import Context

ExecuteT = TypeVar("ExecuteT", bound=Callable[..., Any])

DEFAULT_CONN_ID = CloudflareQueuesHook.default_conn_name
#: the templated arguments every operator (and the sensor) shares
QUEUE_TEMPLATE_FIELDS = ("cloudflare_queue", "account_id", "cloudflare_queues_conn_id")
DEFAULT_MAX_XCOM_BYTES = 1_000_000


def _resolve_callable(value: Callable[..., Any] | str | None, name: str) -> Callable[..., Any] | None:
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            resolved = import_string(value)
        except ImportError as err:
            raise CloudflareQueuesValidationError(f"{name}: cannot import {value!r}: {err}") from None
        if callable(resolved):
            return resolved  # type: ignore[no-any-return]
    raise CloudflareQueuesValidationError(f"{name} must be a callable or its dotted import path, got {value!r}")


#: what a pulling operator does when the queue's delivery is paused
ON_PAUSED = ("skip", "fail", "succeed")


def choice(value: str, choices: tuple[str, ...], name: str) -> str:
    """``value`` when it is one of ``choices``; else an error naming them."""
    if value not in choices:
        raise CloudflareQueuesValidationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def closes_hook(method: ExecuteT) -> ExecuteT:
    """Close the operator's hook when ``method`` (its ``execute``) returns, fails or defers."""

    @functools.wraps(method)
    def run_then_close(self: CloudflareQueuesBaseOperator, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.close_hook()

    return cast(ExecuteT, run_then_close)


class CloudflareQueuesBaseOperator(BaseOperator):
    """
    Arguments every Cloudflare Queues operator (and the sensor) takes; see :mod:`._arguments` for how
    ``queue`` (and ``retry_delay`` where listed in ``_renamed_arguments``) stay apart from Airflow's own.

    :param queue: queue id or name (templated where the subclass lists it; stored as ``cloudflare_queue``).
    :param account_id: account id (default: the connection's ``account_id`` extra).
    :param cloudflare_queues_conn_id: the Airflow connection (default ``cloudflare_queues_default``).
    :param cloudflare_queue: the same as ``queue``; what ``.partial()`` passes it as.
    :param executor_queue: Airflow's executor queue for this task (``BaseOperator``'s ``queue``).
    """

    _renamed_arguments: tuple[str, ...] = ("queue",)

    def __init__(
        self,
        *,
        queue: str | None = None,
        account_id: str | None = None,
        cloudflare_queues_conn_id: str = DEFAULT_CONN_ID,
        cloudflare_queue: str | None = None,
        executor_queue: str | None = None,
        **kwargs: Any,
    ) -> None:
        cloudflare_queue = take_renamed("queue", queue, cloudflare_queue, executor_queue, kwargs)
        super().__init__(**kwargs)
        self.cloudflare_queue = cloudflare_queue
        self.account_id = account_id
        self.cloudflare_queues_conn_id = cloudflare_queues_conn_id

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``BaseOperator.partial``, keeping ``queue`` (and ``retry_delay``) for the queue and its messages."""
        return base_partial(cls, rename_partial_kwargs(kwargs, cls._renamed_arguments), cls._renamed_arguments)

    #: the hook of the current task execution (see :attr:`hook`)
    _task_hook: CloudflareQueuesHook | None = None

    @property
    def hook(self) -> CloudflareQueuesHook:
        """
        The hook of this task execution, for the operator's connection, queue and account: made on first
        use (after the templates are rendered), reused by every call and poke of the execution, and its
        connections closed when ``execute`` ends (:func:`closes_hook`).
        """
        if self._task_hook is None:
            self._task_hook = CloudflareQueuesHook(
                self.cloudflare_queues_conn_id, queue=self.cloudflare_queue or None, account_id=self.account_id or None
            )
        return self._task_hook

    def close_hook(self) -> None:
        """Close the connections of this execution's hook (its settings stay, for OpenLineage)."""
        if self._task_hook is not None:
            self._task_hook.close()

    def _when_paused(self, error: CloudflareQueuesDeliveryPausedError, on_paused: str, done: str) -> None:
        """A pull found the queue's delivery paused: skip or fail the task, or log and carry on."""
        message = (
            f"Delivery of queue {self.cloudflare_queue or self.hook.settings.queue} is paused ({done}); resume it to "
            "pull: `npx wrangler queues resume-delivery <queue-name>`, or CloudflareQueuesResumeDeliveryOperator"
        )
        if on_paused == "skip":
            raise AirflowSkipException(message)
        if on_paused == "fail":
            raise AirflowException(message) from error
        self.log.warning("%s; the task succeeds (on_paused='succeed')", message)

    def _lineage(self, *, reads: bool) -> Any:
        """The queue as an OpenLineage dataset (input when ``reads``), or ``None`` without the provider."""
        try:
            from airflow.providers.common.compat.openlineage.facet import Dataset
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        try:
            settings = self.hook.settings
        except CloudflareQueuesError as err:
            self.log.warning("No OpenLineage dataset for this task: %s", err)
            return None
        queue = self.cloudflare_queue or settings.queue
        if not queue:
            return None
        dataset = Dataset(namespace=f"cloudflare-queues://{settings.account_id}", name=queue)
        return OperatorLineage(inputs=[dataset]) if reads else OperatorLineage(outputs=[dataset])


class CloudflareQueuesPushOperator(CloudflareQueuesBaseOperator):
    """
    Push messages to a Cloudflare queue in the fewest requests (100 messages and 256 KB per request).

    Returns (to XCom) a summary, never the bodies: ``{"queue_id", "messages", "requests", "backlog_count"}``.

    :param messages: what to push (templated): one body, a list (or tuple) of bodies, or of
        :class:`~airflow_provider_cfqueues.api.models.OutgoingMessage` objects carrying their own
        ``content_type``/``delay_seconds``. A ``str`` is sent as text, other JSON values as json; a
        ``dict`` is always one body, whatever its keys. To push one list as a single body, wrap it in a
        list or an ``OutgoingMessage``. An upstream task's output (``XComArg``) works, and so does
        ``.partial(...).expand(messages=...)``.
    :param queue: queue id or name (templated, stored as ``cloudflare_queue``); defaults to the
        connection's ``queue`` extra. Airflow's executor queue is ``executor_queue=``.
    :param account_id: account id (templated); defaults to the connection's ``account_id`` extra.
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    :param content_type: ``"text"`` or ``"json"`` for every plain body; chosen per body when ``None``.
    :param delay_seconds: delay before delivery for the whole push (templated; 0 to 86,400); a
        message's own ``delay_seconds`` wins.
    :param preserve_order: keep strict input order across requests (see the hook).
    """

    template_fields: Sequence[str] = ("messages", *QUEUE_TEMPLATE_FIELDS, "delay_seconds")
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        messages: Any,
        content_type: str | None = None,
        delay_seconds: float | str | None = None,
        preserve_order: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.messages = messages
        self.content_type = content_type
        self.delay_seconds = delay_seconds
        self.preserve_order = preserve_order

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The queue as an output dataset (when the OpenLineage provider is installed)."""
        return self._lineage(reads=False)

    @closes_hook
    def execute(self, context: Context) -> dict[str, Any]:
        messages = self.messages
        if isinstance(messages, tuple):
            messages = list(messages)
        elif not isinstance(messages, list):
            # one body: a str, a dict, a number... or a lazy XCom sequence from a mapped upstream
            is_sequence = isinstance(messages, Iterable) and not isinstance(messages, (str, bytes, dict))
            messages = list(messages) if is_sequence and not isinstance(messages, OutgoingMessage) else [messages]
        delay = delay_seconds(self.delay_seconds)  # a rendered template is a string
        result = self.hook.push_messages(
            messages, delay_seconds=delay, content_type=self.content_type, preserve_order=self.preserve_order
        )
        return {
            "queue_id": result.queue_id,
            "messages": result.messages,
            "requests": result.requests,
            "backlog_count": result.metrics.backlog_count if result.metrics else None,
        }


class CloudflareQueuesPullAndAckOperator(CloudflareQueuesBaseOperator):
    """
    Drain a Cloudflare queue inside one task, with a per-message outcome.

    Each pulled message goes to ``process``; when it returns, the message is acked; when it raises,
    the message is retried after ``retry_delay`` (a backoff by default) and the error is logged with
    the message id. The acks and retries of a batch go out in one request, after the whole batch was
    processed. No message is acked before ``process`` returned for it, and ``process`` sees a message
    at most once per run. Every delivery spends one of the message's attempts (the consumer's
    ``max_retries`` + 1, then the service deletes it or moves it to the dead-letter queue): the
    operator reads that budget at the start, logs messages on their last delivery, and stops pulling
    after ``max_consecutive_failures`` failures in a row, so that an outage of what ``process``
    needs costs few messages an attempt. If the task is killed or times out, the workers stop after
    the message in hand and give the rest back; leases left behind expire and the messages come back.

    Returns (to XCom) a summary: ``pulled``, ``acked``, ``retried``, ``failed``, ``failed_ids``,
    ``poisoned``, ``released``, ``dead_lettered``, ``deleted``, ``batches``, ``ack_warnings``,
    ``backlog_after``, ``untouched``, ``stop_reason``; without ``process`` it also holds
    ``messages``: the decoded messages, bounded by ``max_xcom_bytes``.

    :param process: a callable (or its dotted import path) called as ``process(message, **process_kwargs)``
        with a :class:`~airflow_provider_cfqueues.api.models.PulledMessage`. With ``process_mode="batch"``
        it is called as ``process(messages, **process_kwargs)`` and returns ``None`` when all succeeded,
        raises when the batch failed, or returns the failed messages (the ``PulledMessage`` objects of
        the batch, or their ``id`` or ``lease_id`` strings); anything else fails the task and acks
        nothing of the batch. Without ``process``, the messages are pushed to XCom and then acked
        (at-most-once for whatever reads them downstream; use the Pull and Ack operators for at-least-once).
    :param process_kwargs: keyword arguments for ``process`` (templated).
    :param process_mode: ``"message"`` (default) or ``"batch"``.
    :param queue: queue id or name (templated).
    :param batch_size: the largest pull, 1 to 100 (templated). Each worker starts a run with pulls of
        at most ``max_consecutive_failures`` messages and doubles them while they succeed.
    :param max_messages: stop after this many messages (templated); default: until the queue is empty.
    :param max_batches: stop after this many pulls.
    :param visibility_timeout: how long pulled messages stay leased (``timedelta`` or seconds; up to 12 h).
        Size it above ``batch_size`` x the time ``process`` takes per message.
    :param concurrency: parallel pullers in this task (``process`` must then be thread-safe).
    :param retry_delay: how long a failed message waits before it comes back: ``None`` (default) for
        the provider's backoff (30 s after the first delivery, doubling per attempt, at most 1 h; see
        :class:`~airflow_provider_cfqueues.api.attempts.ExponentialBackoff`), seconds or a
        ``timedelta`` (``0`` for at once), a callable of the message's attempt count returning
        seconds, or ``"consumer"`` for the consumer's own ``retry_delay``. Stored as
        ``message_retry_delay``; Airflow's own task ``retry_delay`` is ``task_retry_delay=``.
    :param max_consecutive_failures: after this many ``process`` failures in a row, stop pulling,
        give back the messages in hand, and fail the task (default 10; ``None`` never stops).
    :param fail_on_error: fail the task at the end when any message failed (they are retried either way).
    :param on_poison: callable (or dotted path) called with a message that ``process`` failed for on
        its ``max_attempts``-th delivery (or one that arrives with more); acked when it returns.
    :param poison_queue: queue id or name to push such messages to (templated); it must exist.
    :param max_attempts: with ``on_poison`` / ``poison_queue``: how many deliveries ``process`` gets
        before a failure routes the message; default (and at most) every delivery the consumer allows,
        so routing happens before the service deletes or dead-letters it.
    :param stop_when_empty: stop at the first empty pull (default); otherwise keep polling every
        second until a quota is reached.
    :param wait_for_in_flight: after an empty pull, keep polling (every second) for up to this long
        (``timedelta`` or seconds) while the backlog still counts messages leased elsewhere or delayed
        (e.g. leases orphaned by a lost answer, which come back when they expire). Default 0.
    :param max_xcom_bytes: the largest message list returned to XCom when there is no ``process``.
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
        "poison_queue",
    )
    ui_color = "#f6821f"
    _renamed_arguments = ("queue", "retry_delay")

    def __init__(
        self,
        *,
        process: Callable[..., Any] | str | None = None,
        process_kwargs: dict[str, Any] | None = None,
        process_mode: str = "message",
        batch_size: int | str = 100,
        max_messages: int | str | None = None,
        max_batches: int | None = None,
        visibility_timeout: timedelta | float = timedelta(minutes=5),
        concurrency: int = 1,
        retry_delay: float | timedelta | str | Callable[[int], float | None] | None = None,
        max_consecutive_failures: int | None = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        fail_on_error: bool = True,
        max_attempts: int | None = None,
        on_poison: Callable[[PulledMessage], Any] | str | None = None,
        poison_queue: str | None = None,
        stop_when_empty: bool = True,
        wait_for_in_flight: timedelta | float = 0,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        on_paused: str = "skip",
        message_retry_delay: float | timedelta | str | Callable[[int], float | None] | None = None,
        task_retry_delay: timedelta | float | None = None,
        **kwargs: Any,
    ) -> None:
        retry_delay = take_renamed("retry_delay", retry_delay, message_retry_delay, task_retry_delay, kwargs)
        super().__init__(**kwargs)
        self.on_paused = choice(on_paused, ON_PAUSED, "on_paused")
        if process_mode not in ("message", "batch"):
            raise CloudflareQueuesValidationError(f"process_mode must be 'message' or 'batch', got {process_mode!r}")
        if concurrency < 1:
            raise CloudflareQueuesValidationError(f"concurrency must be at least 1, got {concurrency!r}")
        if on_poison is not None and poison_queue is not None:
            raise CloudflareQueuesValidationError("set on_poison or poison_queue, not both")
        if max_attempts is not None and on_poison is None and poison_queue is None:
            raise CloudflareQueuesValidationError(
                "max_attempts needs on_poison or poison_queue: without a poison route, the consumer's "
                "max_retries and dead-letter queue decide what happens to a message that keeps failing"
            )
        resolve_retry_delay(retry_delay)  # fail at DAG parse time; stored as given
        self.process = process
        self.process_kwargs = process_kwargs or {}
        self.process_mode = process_mode
        self.batch_size = batch_size
        self.max_messages = max_messages
        self.max_batches = count(max_batches, "max_batches", low=1)
        self.visibility_timeout = known_lease_seconds(visibility_timeout)
        self.concurrency = concurrency
        self.message_retry_delay = retry_delay
        self.max_consecutive_failures = count(max_consecutive_failures, "max_consecutive_failures", low=1)
        self.fail_on_error = fail_on_error
        self.max_attempts = count(max_attempts, "max_attempts", low=1)
        self.on_poison = on_poison
        self.poison_queue = poison_queue
        self.stop_when_empty = stop_when_empty
        self.wait_for_in_flight = duration(wait_for_in_flight, "wait_for_in_flight") or 0.0
        self.max_xcom_bytes = max_xcom_bytes
        self._drainer: Drainer | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The queue as an input dataset (when the OpenLineage provider is installed)."""
        return self._lineage(reads=True)

    @closes_hook
    def execute(self, context: Context) -> dict[str, Any]:
        batch_size = read_batch_size(self.batch_size) or MAX_PULL_BATCH_SIZE
        max_messages = count(self.max_messages, "max_messages")
        process = _resolve_callable(self.process, "process")
        if max_messages == 0:
            return DrainSummary(stop_reason="max_messages is 0").to_xcom(None if process else [])
        hook = self.hook
        if process is None:
            return self._pull_to_xcom(hook, context, batch_size, max_messages)
        on_poison = _resolve_callable(self.on_poison, "on_poison")
        if self.poison_queue:
            on_poison = self._poison_route(hook)
        settings = hook.settings  # read the connection once, in the task's own thread
        plan = DrainPlan(
            batch_size=batch_size,
            max_messages=max_messages,
            max_batches=self.max_batches,
            visibility_timeout=self.visibility_timeout,
            concurrency=self.concurrency,
            stop_when_empty=self.stop_when_empty,
            batch_mode=self.process_mode == "batch",
            retry_delay=resolve_retry_delay(self.message_retry_delay),
            max_attempts=self.max_attempts,
            max_consecutive_failures=self.max_consecutive_failures,
            wait_for_in_flight=self.wait_for_in_flight,
        )
        self._drainer = drainer = Drainer(
            hook.worker_copy,
            self.cloudflare_queue or None,
            plan,
            process,
            process_kwargs=self.process_kwargs,
            on_poison=on_poison,
            log=self.log,
        )
        try:
            summary = drainer.run()
        except CloudflareQueuesDeliveryPausedError as err:
            self._when_paused(err, self.on_paused, drainer.summary.describe())
        finally:
            summary = drainer.summary
            self.log.info(
                "Drained queue %s: %s; backlog after %s; stopped because %s",
                self.cloudflare_queue or settings.queue,
                summary.describe(),
                summary.backlog_after,
                summary.stop_reason or "a worker failed",
            )
        if summary.interrupted:
            raise AirflowException(f"The drain was stopped ({summary.stop_reason}): {summary.describe()}")
        if summary.tripped:
            raise AirflowException(
                f"Stopped pulling after {self.max_consecutive_failures} consecutive process() failures, so that "
                f"the queue's other messages keep their delivery attempts. Last errors: "
                f"{'; '.join(summary.last_errors)}. This run: {summary.describe()}; backlog now "
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

    def _poison_route(self, hook: CloudflareQueuesHook) -> Callable[[PulledMessage], None]:
        """The poison queue's router, once the queue is known to exist and not to be the drained one."""
        assert self.poison_queue
        try:
            poison_id = hook.resolve_queue_id(self.poison_queue)
        except CloudflareQueuesNotFoundError:
            raise CloudflareQueuesConfigError(
                f"poison_queue {self.poison_queue!r} does not exist; nothing was pulled",
                hint=f"create it first (`npx wrangler queues create {self.poison_queue}`), or fix the name",
            ) from None
        if poison_id == hook.resolve_queue_id(self.cloudflare_queue or None):
            raise CloudflareQueuesValidationError(
                f"poison_queue {self.poison_queue!r} is the queue being drained: route poison messages elsewhere"
            )
        return poison_queue_router(hook, poison_id)

    def _pull_to_xcom(
        self, hook: CloudflareQueuesHook, context: Context, batch_size: int, max_messages: int | None
    ) -> dict[str, Any]:
        queue = self.cloudflare_queue or None
        try:
            messages, payload, batches = collect_messages(
                hook,
                queue,
                batch_size=batch_size,
                max_messages=max_messages,
                max_batches=self.max_batches,
                visibility_timeout=self.visibility_timeout,
                max_xcom_bytes=self.max_xcom_bytes,
                lease=False,
                log=self.log,
            )
        except CloudflareQueuesDeliveryPausedError as err:
            self._when_paused(err, self.on_paused, "nothing was pulled")
            return DrainSummary(stop_reason="delivery of the queue is paused").to_xcom([])
        quota_reached = (max_messages is not None and len(messages) >= max_messages) or (
            self.max_batches is not None and batches >= self.max_batches
        )
        summary = DrainSummary(
            pulled=len(messages),
            acked=len(messages),
            batches=batches,
            stop_reason="max_messages or max_batches reached" if quota_reached else "the queue is empty",
        )
        # store the messages before acking them: if storing fails, the leases expire and nothing is lost
        try:
            context["ti"].xcom_push(key="return_value", value=summary.to_xcom(payload))
        except Exception as err:
            release_on_error(hook, queue, messages, self.log, err)
            raise
        result = hook.ack_messages(queue=queue, acks=messages)
        summary.acked = len(messages) - len(result.not_applied)
        summary.ack_warnings = len(result.warnings)
        summary.backlog_after = hook.get_metrics(queue).backlog_count
        return summary.to_xcom(payload)


class CloudflareQueuesPullOperator(CloudflareQueuesBaseOperator):
    """
    Lease messages and return them, with their lease ids, to XCom for downstream tasks (e.g. mapped
    over with ``.expand()``); a :class:`CloudflareQueuesAckOperator` acks or retries them afterwards.
    Nothing is acked here: if the downstream tasks never ack, the leases expire and the messages come
    back (at-least-once).

    Returns a list of messages: ``{"id", "lease_id", "body", "attempts", "published_at",
    "content_type", "metadata", "decode_error"}`` (bytes bodies base64-encoded).

    :param queue: queue id or name (templated).
    :param batch_size: messages per pull, 1 to 100.
    :param max_messages: at most this many messages (templated); default one batch.
    :param visibility_timeout: how long the messages stay leased (``timedelta`` or seconds): it must
        cover the downstream processing and the ack task.
    :param expected_processing_time: how long the downstream work takes; a warning is logged when
        ``visibility_timeout`` is shorter.
    :param max_xcom_bytes: the largest message list returned to XCom (leases are released past it).
    :param on_paused: when the queue's delivery is paused: ``"skip"`` the task (default), ``"fail"``
        it, or ``"succeed"`` with no messages.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (*QUEUE_TEMPLATE_FIELDS, "max_messages")
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        batch_size: int = 100,
        max_messages: int | str | None = None,
        visibility_timeout: timedelta | float = timedelta(minutes=30),
        expected_processing_time: timedelta | float | None = None,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        on_paused: str = "skip",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_paused = choice(on_paused, ON_PAUSED, "on_paused")
        self.batch_size = read_batch_size(batch_size) or MAX_PULL_BATCH_SIZE
        self.max_messages = max_messages
        self.visibility_timeout = known_lease_seconds(visibility_timeout)
        self.expected_processing_time = duration(expected_processing_time, "expected_processing_time")
        self.max_xcom_bytes = max_xcom_bytes
        if self.expected_processing_time is not None and self.visibility_timeout <= self.expected_processing_time:
            self.log.warning(
                "visibility_timeout (%.0f s) is not longer than expected_processing_time (%.0f s): the leases "
                "will expire before the downstream tasks ack them, and the messages will be delivered again",
                self.visibility_timeout,
                self.expected_processing_time,
            )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The queue as an input dataset (when the OpenLineage provider is installed)."""
        return self._lineage(reads=True)

    @closes_hook
    def execute(self, context: Context) -> list[dict[str, Any]]:
        max_messages = count(self.max_messages, "max_messages")
        hook = self.hook
        try:
            _, payload, _ = collect_messages(
                hook,
                self.cloudflare_queue or None,
                batch_size=self.batch_size if max_messages is None else min(self.batch_size, max(1, max_messages)),
                max_messages=self.batch_size if max_messages is None else max_messages,
                max_batches=None,
                visibility_timeout=self.visibility_timeout,
                max_xcom_bytes=self.max_xcom_bytes,
                lease=True,
                log=self.log,
            )
        except CloudflareQueuesDeliveryPausedError as err:
            self._when_paused(err, self.on_paused, "nothing was pulled")
            return []
        return payload


class CloudflareQueuesAckOperator(CloudflareQueuesBaseOperator):
    """
    Acknowledge and retry leases taken by a :class:`CloudflareQueuesPullOperator`, after the tasks
    that processed the messages ran. Typical use, with ``trigger_rule="all_done"`` so that it runs
    even when some processing failed::

        pulled = CloudflareQueuesPullOperator(task_id="pull", queue="orders")
        done = handle.expand(message=pulled.output)  # each returns its message's lease id
        CloudflareQueuesAckOperator(
            task_id="ack", queue="orders", acks=done, retry_unacked_from=pulled.output,
            retry_delay=60, trigger_rule="all_done",
        )

    Returns ``{"acked", "retried", "warnings"}``. When the service applies fewer acks or retries than
    it was given (unknown lease ids, message ids given instead of lease ids, leases of another queue
    or already acked), the task fails after acking what it could, naming them; a warning about a lease
    that was applied anyway (an ack after the lease expired) is only logged.

    :param acks: lease ids, messages or mappings with ``lease_id`` to acknowledge (templated).
    :param retry_leases: leases to retry (templated): same forms, or ``(lease, delay_seconds)`` pairs.
        (Not ``retries``: that is Airflow's number of task retries.)
    :param retry_unacked_from: messages (e.g. the Pull operator's output) whose leases are retried
        unless listed in ``acks`` (templated).
    :param retry_delay: delay for retries without their own, as in
        :class:`CloudflareQueuesPullAndAckOperator`: ``None`` (default) for the provider's backoff by
        each message's ``attempts`` (known for messages and mappings; 1 for bare lease ids), seconds
        or a ``timedelta``, a callable of the attempt count, or ``"consumer"`` for the consumer's
        ``retry_delay``. Stored as ``message_retry_delay``; Airflow's own task ``retry_delay`` is
        ``task_retry_delay=``.
    :param fail_on_retry: fail this task after acking when anything was retried, so that the DAG
        run shows the failure.
    :param queue: queue id or name (templated).
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (
        "acks",
        "retry_leases",
        "retry_unacked_from",
        *QUEUE_TEMPLATE_FIELDS,
    )
    ui_color = "#f6821f"
    _renamed_arguments = ("queue", "retry_delay")

    def __init__(
        self,
        *,
        acks: Any = None,
        retry_leases: Any = None,
        retry_unacked_from: Any = None,
        retry_delay: float | timedelta | str | Callable[[int], float | None] | None = None,
        fail_on_retry: bool = False,
        message_retry_delay: float | timedelta | str | Callable[[int], float | None] | None = None,
        task_retry_delay: timedelta | float | None = None,
        **kwargs: Any,
    ) -> None:
        retry_delay = take_renamed("retry_delay", retry_delay, message_retry_delay, task_retry_delay, kwargs)
        super().__init__(**kwargs)
        resolve_retry_delay(retry_delay)  # fail at DAG parse time; stored as given
        self.acks = acks
        self.retry_leases = retry_leases
        self.retry_unacked_from = retry_unacked_from
        self.message_retry_delay = retry_delay
        self.fail_on_retry = fail_on_retry

    @staticmethod
    def _items(value: Any) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [value]
        if isinstance(value, dict) or hasattr(value, "lease_id"):
            return [value]
        return [item for item in value if item is not None]  # failed mapped tasks leave no value

    @staticmethod
    def _with_delay(item: Any, delay: int | Callable[[int], float | None] | None) -> Any:
        """``(item, delay)`` for a retry without its own delay; ``delay`` by the item's attempts if callable."""
        if isinstance(item, tuple) or (isinstance(item, Mapping) and item.get("delay_seconds") is not None):
            return item
        seconds: float | None
        if callable(delay):
            attempts = item.get("attempts") if isinstance(item, Mapping) else getattr(item, "attempts", None)
            seconds = delay(attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 1)
        else:
            seconds = delay
        return item if seconds is None else (item, seconds)

    @closes_hook
    def execute(self, context: Context) -> dict[str, Any]:
        acks = normalize_acks(self._items(self.acks))
        delay = resolve_retry_delay(self.message_retry_delay)
        retries: list[Any] = [self._with_delay(item, delay) for item in self._items(self.retry_leases)]
        acked = set(acks)
        for item in self._items(self.retry_unacked_from):
            if _lease_id(item) not in acked:
                retries.append(self._with_delay(item, delay))
        result = self.hook.ack_messages(acks=acks, retries=retries)
        self.log.info(
            "Acked %d lease(s), retried %d, warnings: %s",
            result.ack_count,
            result.retry_count,
            lease_texts(result.warnings) or "none",
        )
        if result.unconfirmed:
            self.log.warning(
                "%d lease(s) may have been applied by a request attempt that got no answer; the answer to the "
                "resent request did not count them: %s",
                len(result.unconfirmed),
                lease_texts(result.unconfirmed),
            )
        if result.not_applied:
            raise AirflowException(_not_applied_text(result.not_applied, len(acks) + len(retries), result))
        if self.fail_on_retry and result.retry_count:
            raise AirflowException(f"{result.retry_count} message(s) were retried: their processing failed")
        return {"acked": result.ack_count, "retried": result.retry_count, "warnings": result.warnings}


def _lease_id(item: Any) -> Any:
    return normalize_acks([item[0] if isinstance(item, tuple) else item])[0]


def _not_applied_text(not_applied: Mapping[str, str], given: int, result: AckResult) -> str:
    """The Ack operator's error: which leases the service did not apply, and why."""
    shown = lease_texts(dict(list(not_applied.items())[:10]))
    text = (
        f"{len(not_applied)} of the {given} lease(s) given were not acked or retried ({shown}"
        f"{'; ...' if len(not_applied) > 10 else ''}); {result.ack_count} acked and {result.retry_count} "
        "retried. Their messages come back when their leases expire and will be processed again"
    )
    if any(is_queue_id(lease) for lease in not_applied):
        text += (
            ". Some of these are 32 hexadecimal characters, the shape of a message id: ack with each pulled "
            "message's lease_id, not its id"
        )
    return text
