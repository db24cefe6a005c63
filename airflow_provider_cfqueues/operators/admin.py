"""
Queue administration from DAGs: create and delete queues, pause and resume delivery, purge, and
change an HTTP pull consumer. They need an API token with the account's **Queues Edit** permission;
without it the task fails with that fix. Every one is safe to retry (idempotent by default), and
the irreversible purge runs only with ``confirm=True``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._compat import AirflowException, conf
from ..api.admin_requests import ConsumerSettings, queue_settings, validate_jurisdiction, validate_queue_name
from ..api.errors import CloudflareQueuesApiError, CloudflareQueuesNotFoundError, CloudflareQueuesValidationError
from ..api.models import Consumer, Queue
from ..api.units import interval
from ..hooks.queues import CloudflareQueuesHook
from ..triggers.purge import CloudflareQueuesPurgeTrigger
from .base import QUEUE_TEMPLATE_FIELDS, CloudflareQueuesBaseOperator, choice, closes_hook

if TYPE_CHECKING:
    from airflow.sdk import Context

IF_EXISTS = ("ignore", "fail", "update")
IF_MISSING = ("ignore", "fail")
#: the consumer settings an operator may template
CONSUMER_TEMPLATE_FIELDS = (
    "batch_size",
    "max_retries",
    "message_retry_delay",
    "visibility_timeout",
    "dead_letter_queue",
)


def _find(hook: CloudflareQueuesHook, queue: str) -> Queue | None:
    try:
        return hook.get_queue(queue)
    except CloudflareQueuesNotFoundError:
        return None


def _consumer_summary(consumer: Consumer) -> dict[str, Any]:
    return {
        "consumer_id": consumer.consumer_id,
        "type": consumer.type,
        "dead_letter_queue": consumer.dead_letter_queue or None,
        "settings": consumer.settings.model_dump(exclude_none=True),
    }


class _AdminOperator(CloudflareQueuesBaseOperator):
    """An operator that changes a queue: it acts on the queue it is given, never on the connection's default."""

    _needs_named_queue = True
    ui_color = "#fbad41"


class _ConsumerArguments(_AdminOperator):
    """
    The HTTP pull consumer settings an operator takes (see :class:`ConsumerSettings`).
    ``message_retry_delay`` is the consumer's ``retry_delay`` (how long a failed message waits);
    ``retry_delay=`` is Airflow's, between task retries.
    """

    def __init__(
        self,
        *,
        batch_size: int | str | None = None,
        max_retries: int | str | None = None,
        message_retry_delay: float | timedelta | str | None = None,
        visibility_timeout: float | timedelta | str | None = None,
        dead_letter_queue: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.message_retry_delay = message_retry_delay
        self.visibility_timeout = visibility_timeout
        self.dead_letter_queue = dead_letter_queue

    @property
    def consumer_settings(self) -> ConsumerSettings:
        return ConsumerSettings(
            self.batch_size, self.max_retries, self.message_retry_delay, self.visibility_timeout, self.dead_letter_queue
        )

    def consumer_kwargs(self) -> dict[str, Any]:
        """The settings as the hook's ``create_consumer`` / ``update_consumer`` take them."""
        return asdict(self.consumer_settings)

    def _check_consumer_settings(self) -> None:
        """Fail at DAG parse time on settings that are not templates and are wrong."""
        if not any(isinstance(v, str) and "{{" in v for v in vars(self.consumer_settings).values()):
            self.consumer_settings.wire()
            self.consumer_settings.dlq()


class CloudflareQueuesCreateQueueOperator(_ConsumerArguments):
    """
    Create a queue, with an HTTP pull consumer (and its dead-letter queue) unless told otherwise;
    returns the queue id. Idempotent by default: an existing queue is left as it is.

    :param cloudflare_queue: the name of the queue (templated).
    :param delivery_delay: whole seconds (or a ``timedelta``) each message waits before its first
        delivery (templated).
    :param message_retention_period: how long messages are kept, 60 s to 14 days (templated).
    :param jurisdiction: where the queue's data is kept: ``"eu"``, ``"us"`` or ``"fedramp"`` (templated;
        default: anywhere). An existing queue is not moved.
    :param pull_consumer: add an HTTP pull consumer (default), so that the provider's operators can pull.
    :param batch_size: the consumer's default messages per pull (templated).
    :param max_retries: retries before a message goes to the dead-letter queue or is deleted (templated).
    :param message_retry_delay: whole seconds (or a ``timedelta``) a retried message waits, by default:
        the consumer's ``retry_delay`` (templated). (``retry_delay=`` is Airflow's, between task retries.)
    :param visibility_timeout: seconds (or a ``timedelta``) a pull leases its messages for, by default
        (templated).
    :param dead_letter_queue: the queue name exhausted messages go to (templated); the service
        creates it when missing.
    :param if_exists: ``"ignore"`` (default: leave it as it is, but add the HTTP pull consumer it lacks
        when ``pull_consumer``), ``"fail"``, or ``"update"`` (apply the settings given here, adding the
        pull consumer if it has none).
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (
        *QUEUE_TEMPLATE_FIELDS,
        "delivery_delay",
        "message_retention_period",
        "jurisdiction",
        *CONSUMER_TEMPLATE_FIELDS,
    )

    def __init__(
        self,
        *,
        delivery_delay: float | timedelta | str | None = None,
        message_retention_period: float | timedelta | str | None = None,
        jurisdiction: str | None = None,
        pull_consumer: bool = True,
        if_exists: str = "ignore",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.delivery_delay = delivery_delay
        self.message_retention_period = message_retention_period
        self.jurisdiction = jurisdiction
        self.pull_consumer = pull_consumer
        self.if_exists = choice(if_exists, IF_EXISTS, "if_exists")
        self._check_consumer_settings()

    @closes_hook
    def execute(self, context: Context) -> str:
        hook = self.hook
        name = validate_queue_name(self.queue_ref)
        # every rendered setting is checked before the first request: a wrong one must not leave a queue
        # created without its consumer
        queue_settings(delivery_delay=self.delivery_delay, message_retention_period=self.message_retention_period)
        jurisdiction = validate_jurisdiction(self.jurisdiction or None)
        self.consumer_settings.wire()
        self.consumer_settings.dlq()
        existing = _find(hook, name)
        if existing is None:
            try:
                created = hook.create_queue(
                    name,
                    delivery_delay=self.delivery_delay,
                    message_retention_period=self.message_retention_period,
                    jurisdiction=jurisdiction,
                )
            except CloudflareQueuesApiError as err:
                existing = _find(hook, name) if err.status in (400, 409) else None
                if existing is None:
                    raise  # not a queue created meanwhile by someone else
            else:
                self.log.info("Created queue %s (%s)", created.queue_name, created.queue_id)
                if self.pull_consumer:
                    consumer = hook.create_consumer(created.queue_id, **self.consumer_kwargs())
                    self.log.info("Added its HTTP pull consumer: %s", _consumer_summary(consumer))
                return created.queue_id
        if self.if_exists == "fail":
            raise AirflowException(f"queue {name} already exists ({existing.queue_id}); if_exists='fail'")
        if self.if_exists == "update":
            self._update(hook, existing)
        elif self.pull_consumer and existing.http_pull_consumer is None:
            # e.g. an earlier try created the queue and then failed to add its consumer
            consumer = hook.create_consumer(existing.queue_id, **self.consumer_kwargs())
            self.log.info(
                "Queue %s exists (%s) without an HTTP pull consumer: added one, %s (if_exists='ignore' leaves "
                "its other settings as they are)",
                name,
                existing.queue_id,
                _consumer_summary(consumer),
            )
        else:
            self.log.info("Queue %s exists (%s): left as it is (if_exists='ignore')", name, existing.queue_id)
        return existing.queue_id

    def _update(self, hook: CloudflareQueuesHook, queue: Queue) -> None:
        if self.delivery_delay is not None or self.message_retention_period is not None:
            hook.update_queue(
                queue.queue_id,
                delivery_delay=self.delivery_delay,
                message_retention_period=self.message_retention_period,
            )
        if not self.pull_consumer:
            self.log.info("Queue %s exists: settings applied (if_exists='update')", queue.queue_name)
            return
        kwargs = self.consumer_kwargs()
        if queue.http_pull_consumer is None:
            consumer = hook.create_consumer(queue.queue_id, **kwargs)
        elif any(value is not None for value in kwargs.values()):
            consumer = hook.update_consumer(queue.queue_id, **kwargs)
        else:
            consumer = queue.http_pull_consumer
        self.log.info("Queue %s exists: settings applied; consumer %s", queue.queue_name, _consumer_summary(consumer))


class CloudflareQueuesDeleteQueueOperator(_AdminOperator):
    """
    Delete a queue and every message in it (irreversible); returns its id, or ``None`` when there was
    no such queue and ``if_missing="ignore"`` (the default: safe to retry, and to put after a run with
    ``trigger_rule="all_done"``).

    :param cloudflare_queue: queue id or name (templated); required: never the connection's default queue.
    :param if_missing: ``"ignore"`` (default) or ``"fail"``.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = QUEUE_TEMPLATE_FIELDS

    def __init__(self, *, if_missing: str = "ignore", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.if_missing = choice(if_missing, IF_MISSING, "if_missing")

    @closes_hook
    def execute(self, context: Context) -> str | None:
        queue = self.queue_ref
        try:
            queue_id = self.hook.delete_queue(queue)
        except CloudflareQueuesNotFoundError:
            if self.if_missing == "fail":
                raise
            self.log.info("There is no queue %s: nothing to delete (if_missing='ignore')", queue)
            return None
        self.log.info("Deleted queue %s (%s)", queue, queue_id)
        return queue_id


class _DeliveryOperator(_AdminOperator):
    template_fields: Sequence[str] = QUEUE_TEMPLATE_FIELDS
    paused: bool

    @closes_hook
    def execute(self, context: Context) -> dict[str, Any]:
        queue = self.hook.update_queue(self.queue_ref, delivery_paused=self.paused)
        self.log.info("Delivery of queue %s %s", queue.queue_name, "paused" if self.paused else "resumed")
        return {"queue_id": queue.queue_id, "delivery_paused": queue.settings.delivery_paused}


class CloudflareQueuesPauseDeliveryOperator(_DeliveryOperator):
    """
    Pause delivery: pushes are still kept, pulls are refused (PullAndAck and the Pull operator skip)
    until delivery is resumed. Returns ``{"queue_id", "delivery_paused"}``; pausing a paused queue is fine.

    :param cloudflare_queue: queue id or name (templated); required: never the connection's default queue.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    paused = True


class CloudflareQueuesResumeDeliveryOperator(_DeliveryOperator):
    """
    Resume delivery after a pause. Returns ``{"queue_id", "delivery_paused"}``.

    :param cloudflare_queue: queue id or name (templated); required: never the connection's default queue.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    paused = False


class CloudflareQueuesPurgeOperator(_AdminOperator):
    """
    Delete every message in a queue. **A purge cannot be undone**: the operator refuses to exist
    without ``confirm=True``. It reads the backlog, starts the purge, and waits for the service to
    finish it (on the triggerer with ``deferrable=True``); returns how many messages the backlog held.

    :param cloudflare_queue: queue id or name (templated); required: never the connection's default queue.
    :param confirm: must be ``True``.
    :param wait: wait for the purge to complete (default); else return once it started.
    :param deferrable: wait on the triggerer instead of a worker slot.
    :param poll_interval: seconds (or a ``timedelta``) between status polls.
    :param timeout: how long to wait for the purge (default one hour); then the task fails, while the
        purge goes on in the service.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = QUEUE_TEMPLATE_FIELDS
    ui_color = "#e8574a"

    def __init__(
        self,
        *,
        confirm: bool = False,
        wait: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta = 5,
        timeout: float | timedelta = timedelta(hours=1),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if confirm is not True:
            raise CloudflareQueuesValidationError(
                "a purge deletes every message of the queue and cannot be undone: pass confirm=True"
            )
        self.confirm = confirm
        self.wait = wait
        self.deferrable = deferrable
        self.poll_interval = interval(poll_interval, "poll_interval")
        self.purge_timeout = interval(timeout, "timeout")

    @closes_hook
    def execute(self, context: Context) -> int:
        hook = self.hook
        queue = self.queue_ref
        backlog = hook.get_metrics(queue).backlog_count
        if not (self.wait and self.deferrable):
            status = hook.purge_queue(
                queue, wait=self.wait, timeout=self.purge_timeout, poll_interval=self.poll_interval
            )
            self.log.info("Purged queue %s: %d message(s) were in it; status %s", queue, backlog, status.model_dump())
            return backlog
        hook.purge_queue(queue, wait=False)
        self.defer(
            trigger=CloudflareQueuesPurgeTrigger(
                cloudflare_queue=queue,
                poll_interval=self.poll_interval,
                timeout_at=time.time() + self.purge_timeout,
                backlog_before=backlog,
                account_id=self.account_id or None,
                cloudflare_queues_conn_id=self.cloudflare_queues_conn_id,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.purge_timeout),
        )
        return backlog  # not reached: defer() raises

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> int:
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "the trigger ended without an event")
            raise AirflowException(f"Purging queue {self.queue_ref} failed: {message}")
        backlog = int(event["backlog_before"])
        self.log.info("Purged queue %s: %d message(s) were in it; %s", self.queue_ref, backlog, event["message"])
        return backlog


class CloudflareQueuesUpdateConsumerOperator(_ConsumerArguments):
    """
    Change the settings given of a queue's HTTP pull consumer; the others stay as they are. Returns
    the consumer: ``{"consumer_id", "type", "dead_letter_queue", "settings"}``.

    :param cloudflare_queue: queue id or name (templated); required: never the connection's default queue.
    :param consumer_id: the consumer (default: the queue's HTTP pull consumer).
    :param batch_size: messages per pull by default (templated).
    :param max_retries: retries before a message goes to the dead-letter queue or is deleted (templated).
    :param message_retry_delay: whole seconds (or a ``timedelta``) a retried message waits, by default:
        the consumer's ``retry_delay`` (templated). (``retry_delay=`` is Airflow's, between task retries.)
    :param visibility_timeout: seconds (or a ``timedelta``) a pull leases its messages for (templated).
    :param dead_letter_queue: the queue name exhausted messages go to; ``""`` removes it (templated).
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (*QUEUE_TEMPLATE_FIELDS, "consumer_id", *CONSUMER_TEMPLATE_FIELDS)

    def __init__(self, *, consumer_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.consumer_id = consumer_id
        self._check_consumer_settings()

    @closes_hook
    def execute(self, context: Context) -> dict[str, Any]:
        queue = self.queue_ref
        consumer = self.hook.update_consumer(queue, self.consumer_id or None, **self.consumer_kwargs())
        summary = _consumer_summary(consumer)
        self.log.info("Consumer of queue %s is now %s", queue, summary)
        return summary
