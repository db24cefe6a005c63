"""
The split pattern: a Pull operator leases messages into XCom for downstream tasks, and an Ack
operator acknowledges or retries them afterwards (at-least-once). ``ack=True`` on the Pull operator
acknowledges right after storing them instead (at-most-once for whatever reads them downstream).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._compat import AirflowException
from ..api.errors import CloudflareQueuesDeliveryPausedError, CloudflareQueuesValidationError
from ..api.limits import MAX_PULL_BATCH_SIZE
from ..api.models import AckResult, PulledMessage
from ..api.operations import is_queue_id, lease_texts, normalize_acks
from ..api.units import batch_size as read_batch_size
from ..api.units import count, duration, known_lease_seconds
from ..consume.attempts import MessageRetryDelay, resolve_message_retry_delay
from ..consume.release import release_on_error
from .base import ON_PAUSED, QUEUE_TEMPLATE_FIELDS, CloudflareQueuesBaseOperator, choice, closes_hook

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_MAX_XCOM_BYTES = 1_000_000


class XComLimitError(CloudflareQueuesValidationError):
    """The messages would not fit in the XCom size limit (XCom is not a data channel)."""


class CloudflareQueuesPullOperator(CloudflareQueuesBaseOperator):
    """
    Lease messages and return them to XCom for downstream tasks (e.g. mapped over with ``.expand()``).

    With ``ack=False`` (default, at-least-once) the messages keep their leases and carry their
    ``lease_id``: a :class:`CloudflareQueuesAckOperator` acks or retries them after the downstream
    tasks ran; if nothing acks them, the leases expire and the messages come back. With ``ack=True``
    (at-most-once) they are stored in XCom first and then acknowledged in this task: a downstream
    failure does not bring them back.

    Returns a list of messages: ``{"id", "lease_id", "body", "attempts", "published_at",
    "content_type", "metadata", "decode_error"}`` (no ``lease_id`` with ``ack=True``; bytes bodies
    base64-encoded).

    :param cloudflare_queue: queue id or name (templated); default: the connection's ``queue`` extra.
    :param batch_size: messages per pull, 1 to 100.
    :param max_messages: at most this many messages (templated); default one batch.
    :param visibility_timeout: how long the messages stay leased (``timedelta`` or seconds): with
        ``ack=False`` it must cover the downstream processing and the ack task.
    :param ack: acknowledge the messages once they are stored in XCom (at-most-once).
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
        batch_size: int = MAX_PULL_BATCH_SIZE,
        max_messages: int | str | None = None,
        visibility_timeout: timedelta | float = timedelta(minutes=30),
        ack: bool = False,
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
        self.ack = ack
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
        if max_messages == 0:
            self.log.info("max_messages is 0: nothing pulled")
            return []
        hook = self.hook
        queue = self.queue_ref
        size = 2  # the JSON list's brackets
        payload: list[dict[str, Any]] = []

        def enough(messages: list[PulledMessage]) -> bool:  # after each pull: the XCom form so far
            nonlocal size
            for message in messages[len(payload) :]:
                item = message.to_xcom(lease=not self.ack)
                payload.append(item)
                size += len(json.dumps(item)) + 1
            return size > self.max_xcom_bytes

        collected = hook.collect_messages(
            queue=queue,
            batch_size=self.batch_size if max_messages is None else min(self.batch_size, max_messages),
            max_messages=self.batch_size if max_messages is None else max_messages,
            visibility_timeout=self.visibility_timeout,
            enough=enough,
        )
        messages = collected.messages
        if collected.error is not None:
            if not isinstance(collected.error, CloudflareQueuesDeliveryPausedError):
                release_on_error(hook, queue, messages, self.log, collected.error)
                raise collected.error
            if not messages:
                self._when_paused(collected.error, self.on_paused, "nothing was pulled")
                return []
            self.log.warning(
                "Delivery of queue %s was paused after %d message(s): returning those", queue, len(messages)
            )
        if size > self.max_xcom_bytes:
            hook.ack_messages(queue=queue, retries=[(m, 0) for m in messages])
            raise XComLimitError(
                f"{len(messages)} message(s) take about {size:,} bytes as XCom, over max_xcom_bytes="
                f"{self.max_xcom_bytes:,}; their leases were released (each release spends one delivery attempt), "
                "nothing was lost. XCom is not a data channel: lower max_messages, or process the messages "
                "inside the task with CloudflareQueuesPullAndAckOperator(process=...)"
            )
        self.log.info(
            "Pulled %d message(s) from queue %s in %d batch(es); backlog %s",
            len(messages),
            queue,
            collected.batches,
            collected.backlog_count,
        )
        if self.ack and messages:
            self._store_then_ack(context, queue, messages, payload)
        return payload

    def _store_then_ack(
        self, context: Context, queue: str, messages: list[PulledMessage], payload: list[dict[str, Any]]
    ) -> None:
        """Store the messages in XCom, then ack them: if storing fails, the leases are given back, nothing lost."""
        hook = self.hook
        try:
            context["ti"].xcom_push(key="return_value", value=payload)
        except Exception as err:
            release_on_error(hook, queue, messages, self.log, err)
            raise
        result = hook.ack_messages(queue=queue, acks=messages)
        if result.not_applied:
            self.log.warning(
                "%d of %d message(s) were stored but not acked (%s): they come back when their leases expire",
                len(result.not_applied),
                len(messages),
                lease_texts(result.not_applied),
            )
        self.log.info("Stored %d message(s) in XCom, then acked %d", len(messages), result.ack_count)


class CloudflareQueuesAckOperator(CloudflareQueuesBaseOperator):
    """
    Acknowledge and retry leases taken by a :class:`CloudflareQueuesPullOperator`, after the tasks
    that processed the messages ran. Typical use, with ``trigger_rule="all_done"`` so that it runs
    even when some processing failed::

        pulled = CloudflareQueuesPullOperator(task_id="pull", cloudflare_queue="orders")
        done = handle.expand(message=pulled.output)  # each returns its message's lease id
        CloudflareQueuesAckOperator(
            task_id="ack", cloudflare_queue="orders", acks=done, retry_unacked_from=pulled.output,
            message_retry_delay=60, trigger_rule="all_done",
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
    :param message_retry_delay: delay for retries without their own, as in
        :class:`~airflow_provider_cfqueues.operators.consume.CloudflareQueuesPullAndAckOperator`:
        ``None`` (default) for the provider's backoff by each message's ``attempts`` (known for
        messages and mappings; 1 for bare lease ids), seconds or a ``timedelta``, a callable of the
        attempt count, or ``"consumer"`` for the consumer's ``retry_delay``.
    :param fail_on_retry: fail this task after acking when anything was retried, so that the DAG
        run shows the failure.
    :param cloudflare_queue: queue id or name (templated); default: the connection's ``queue`` extra.
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

    def __init__(
        self,
        *,
        acks: Any = None,
        retry_leases: Any = None,
        retry_unacked_from: Any = None,
        message_retry_delay: float | timedelta | str | Callable[[int], float | None] | MessageRetryDelay | None = None,
        fail_on_retry: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        #: resolved once, when the DAG is parsed (an error shows there); the argument is kept as given
        self._message_retry_delay = resolve_message_retry_delay(message_retry_delay)
        self.acks = acks
        self.retry_leases = retry_leases
        self.retry_unacked_from = retry_unacked_from
        self.message_retry_delay = message_retry_delay
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
    def _with_delay(item: Any, delay: MessageRetryDelay) -> Any:
        """``(item, seconds)`` for a retry without its own delay (by the item's attempts), else ``item``."""
        if isinstance(item, tuple) or (isinstance(item, Mapping) and item.get("delay_seconds") is not None):
            return item
        attempts = item.get("attempts") if isinstance(item, Mapping) else getattr(item, "attempts", None)
        seconds = delay.seconds(attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 1)
        return item if seconds is None else (item, seconds)

    @closes_hook
    def execute(self, context: Context) -> dict[str, Any]:
        acks = normalize_acks(self._items(self.acks))
        delay = self._message_retry_delay
        retries: list[Any] = [self._with_delay(item, delay) for item in self._items(self.retry_leases)]
        acked = set(acks)
        for item in self._items(self.retry_unacked_from):
            if _lease_id(item) not in acked:
                retries.append(self._with_delay(item, delay))
        result = self.hook.ack_messages(queue=self.queue_ref, acks=acks, retries=retries)
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
