"""
A notifier that pushes one message to a Cloudflare queue from Airflow's callbacks: task and DAG
``on_failure_callback`` / ``on_success_callback`` / ``on_retry_callback`` (sync, in the task or the
DAG processor), and, on Airflow 3, deadline alerts (``AsyncCallback``, awaited on the triggerer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .._compat import AIRFLOW_3, BaseNotifier
from ..api.errors import CloudflareQueuesConfigError, CloudflareQueuesValidationError
from ..api.guidance import foreign_names_error
from ..api.models import PushResult
from ..api.units import delay_seconds as read_delay
from ..hooks.queues import CloudflareQueuesHook

#: the longest exception text the default message keeps
MAX_EXCEPTION_CHARS = 2_000


def callback_event(context: Mapping[str, Any]) -> dict[str, Any]:
    """
    The default message: what the callback was called for, as JSON values. Keys present when known:
    ``dag_id``, ``run_id``, ``task_id``, ``map_index``, ``try_number``, ``state`` (the task's, else the
    run's), ``logical_date``, ``exception``, ``reason`` (DAG callbacks), ``deadline`` (deadline alerts).
    """
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    event: dict[str, Any] = {"source": "airflow"}
    for key, found in (
        ("dag_id", _field(ti, "dag_id") or _field(dag_run, "dag_id") or _field(context.get("dag"), "dag_id")),
        ("run_id", _field(ti, "run_id") or _field(dag_run, "run_id") or context.get("run_id")),
        ("task_id", _field(ti, "task_id")),
        ("map_index", _field(ti, "map_index")),
        ("try_number", _field(ti, "try_number")),
        ("state", _field(ti, "state") or _field(dag_run, "state")),
        ("logical_date", _field(dag_run, "logical_date") or context.get("logical_date")),
        ("reason", context.get("reason")),
        ("deadline", context.get("deadline")),
    ):
        if found is not None:
            event[key] = _json_value(found)
    exception = context.get("exception")
    if exception is not None:
        text = f"{type(exception).__name__}: {exception}" if isinstance(exception, BaseException) else str(exception)
        event["exception"] = text[:MAX_EXCEPTION_CHARS]
    return event


def _field(holder: object, name: str) -> Any:
    if holder is None:
        return None
    return holder.get(name) if isinstance(holder, Mapping) else getattr(holder, name, None)


def _json_value(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    enum_value = getattr(value, "value", None)  # TaskInstanceState, DagRunState
    return enum_value if isinstance(enum_value, str) else str(value)


class CloudflareQueuesNotifier(BaseNotifier):
    """
    Push one message to a Cloudflare queue when a task or DAG callback fires, or a deadline is missed.

    ::

        on_failure_callback=CloudflareQueuesNotifier(cloudflare_queue="alerts")  # the default message
        on_success_callback=CloudflareQueuesNotifier(
            cloudflare_queue="events", message={"dag": "{{ dag.dag_id }}", "done": "{{ ds }}"}
        )

    Deadline alerts (Airflow 3) run it on the triggerer through its async path::

        DeadlineAlert(..., callback=AsyncCallback(CloudflareQueuesNotifier, kwargs={"cloudflare_queue": "alerts"}))

    A failed push (after the hook's retries) is logged by Airflow and raised; Airflow does not fail the
    task or run for a failed callback. Delivery is at-least-once, like any push.

    :param cloudflare_queue: the queue, by id or name (templated); default: the connection's ``queue``
        extra, as for the operators. (There is no ``queue=``: on operators that is Airflow's executor queue.)
    :param message: the body (templated, nested values too): a ``str`` (sent as text) or a JSON value.
        Default: :func:`callback_event` of the callback's context (dag, run, task, state, exception...).
    :param content_type: ``"text"`` or ``"json"``; chosen from the body when ``None``.
    :param delay_seconds: delay before the message can be delivered (seconds or a ``timedelta``; 0 to
        86,400).
    :param account_id: the account id (templated); default: the connection's ``account_id`` extra.
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    :param context: the context, when Airflow's deadline callbacks construct and await the notifier.
    """

    template_fields: Sequence[str] = ("message", "cloudflare_queue", "account_id", "cloudflare_queues_conn_id")

    def __init__(
        self,
        *,
        cloudflare_queue: str | None = None,
        message: Any = None,
        content_type: str | None = None,
        delay_seconds: Any = None,
        account_id: str | None = None,
        cloudflare_queues_conn_id: str = CloudflareQueuesHook.default_conn_name,
        context: Mapping[str, Any] | None = None,
        **unknown: Any,
    ) -> None:
        if error := foreign_names_error(type(self).__name__, unknown):
            raise TypeError(error)
        if "queue" in unknown:
            raise TypeError(f"{type(self).__name__} names its queue with cloudflare_queue=, got queue=")
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected argument(s): {', '.join(sorted(unknown))}")
        self.cloudflare_queue = cloudflare_queue
        self.message = message
        self.content_type = content_type
        self.delay_seconds = read_delay(delay_seconds, "delay_seconds")
        self.account_id = account_id
        self.cloudflare_queues_conn_id = cloudflare_queues_conn_id
        if AIRFLOW_3:
            super().__init__(context)  # type: ignore[arg-type]
        else:  # pragma: no cover - Airflow 2.11 notifiers take no context
            super().__init__()

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render the templated fields. ``dag.test()`` hands DAG callbacks a serialized DAG, which has no
        template environment: the fields are then rendered with the default one (no user macros)."""
        dag = context.get("dag")
        if jinja_env is None and dag is not None and not hasattr(dag, "get_template_env"):
            jinja_env = self.get_template_env()
        super().render_template_fields(context, jinja_env)

    def notify(self, context: Any) -> None:
        """Push the message (sync: task and DAG callbacks)."""
        hook = CloudflareQueuesHook(self.cloudflare_queues_conn_id, account_id=self.account_id or None)
        try:
            queue = self._queue(hook.settings.queue)
            body = self._body(context)
            result = hook.push_message(
                body, queue=queue, content_type=self.content_type, delay_seconds=self.delay_seconds
            )
        finally:
            hook.close()
        self._report(result, queue)

    async def async_notify(self, context: Any) -> None:
        """Push the message (async: deadline alerts on the triggerer)."""
        hook = CloudflareQueuesHook(self.cloudflare_queues_conn_id, account_id=self.account_id or None)
        try:
            queue = self._queue((await hook.aget_settings()).queue)
            body = self._body(context)
            result = await hook.apush_messages(
                [body], queue=queue, content_type=self.content_type, delay_seconds=self.delay_seconds
            )
        finally:
            await hook.aclose()
        self._report(result, queue)

    def _queue(self, connection_queue: str | None) -> str:
        queue = self.cloudflare_queue
        if queue is None:
            if not connection_queue:
                raise CloudflareQueuesConfigError(
                    f"no Cloudflare queue to notify: pass cloudflare_queue=<id or name>, or set the 'queue' extra "
                    f"of connection {self.cloudflare_queues_conn_id!r}"
                )
            return connection_queue
        if not isinstance(queue, str) or not queue.strip():
            raise CloudflareQueuesValidationError(f"cloudflare_queue rendered empty ({queue!r}): name the queue")
        return queue

    def _body(self, context: Any) -> Any:
        return callback_event(context or {}) if self.message is None else self.message

    def _report(self, result: PushResult, queue: str) -> None:
        self.log.info("Notified queue %s (%d message)", queue, result.messages)
