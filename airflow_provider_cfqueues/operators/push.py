"""The push operator: messages from a DAG into a Cloudflare queue, in the fewest requests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..api.models import OutgoingMessage
from ..api.units import delay_seconds
from .base import QUEUE_TEMPLATE_FIELDS, CloudflareQueuesBaseOperator, closes_hook

if TYPE_CHECKING:
    from airflow.sdk import Context


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
    :param cloudflare_queue: queue id or name (templated); default: the connection's ``queue`` extra.
    :param account_id: account id (templated); default: the connection's ``account_id`` extra.
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
        queue = self.queue_ref
        result = self.hook.push_messages(
            messages,
            queue=queue,
            delay_seconds=delay,
            content_type=self.content_type,
            preserve_order=self.preserve_order,
        )
        if result.messages:
            self.log.info("Pushed %d message(s) to queue %s in %d request(s)", result.messages, queue, result.requests)
        else:
            self.log.info("Nothing to push to queue %s: the message list is empty, no request was sent", queue)
        return {
            "queue_id": result.queue_id,
            "messages": result.messages,
            "requests": result.requests,
            "backlog_count": result.metrics.backlog_count if result.metrics else None,
        }
