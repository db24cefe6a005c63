"""
Look at a queue without taking anything from it: a peek neither leases a message nor spends one of its
delivery attempts. To delete what a peek selected, :mod:`.purge` (purge by reference).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..api.limits import MAX_PULL_BATCH_SIZE
from ..api.units import batch_size as read_batch_size
from .base import QUEUE_TEMPLATE_FIELDS, CloudflareQueuesBaseOperator, closes_hook
from .pull_ack import DEFAULT_MAX_XCOM_BYTES, XComLimitError

if TYPE_CHECKING:
    from airflow.sdk import Context


class CloudflareQueuesPeekOperator(CloudflareQueuesBaseOperator):
    """
    Return (to XCom) up to ``batch_size`` of the queue's available messages, in the order a pull would
    deliver them, without leasing them: no delivery attempt is spent and they stay available to pulls.
    Each carries a ``ref`` to purge it by (:class:`CloudflareQueuesPurgeMessagesOperator`). A peek does
    not page: peeking again shows the same first messages (leased and delayed messages are not shown).

    Returns a list of messages: ``{"id", "ref", "body", "attempts", "published_at", "content_type",
    "metadata", "decode_error"}`` (bytes bodies base64-encoded).

    :param cloudflare_queue: queue id or name (templated); default: the connection's ``queue`` extra.
    :param batch_size: how many messages to show, 1 to 100 (templated).
    :param max_xcom_bytes: the largest message list returned to XCom; past it the task fails (nothing
        was taken from the queue).
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (*QUEUE_TEMPLATE_FIELDS, "batch_size")
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        batch_size: int | str = MAX_PULL_BATCH_SIZE,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(batch_size, str):
            read_batch_size(batch_size)  # fail at DAG parse time
        self.batch_size = batch_size
        self.max_xcom_bytes = max_xcom_bytes

    @closes_hook
    def execute(self, context: Context) -> list[dict[str, Any]]:
        queue = self.queue_ref
        result = self.hook.peek_messages(queue=queue, batch_size=read_batch_size(self.batch_size))
        payload = [message.to_xcom() for message in result.messages]
        size = len(json.dumps(payload))
        if size > self.max_xcom_bytes:
            raise XComLimitError(
                f"{len(payload)} peeked message(s) take about {size:,} bytes as XCom, over max_xcom_bytes="
                f"{self.max_xcom_bytes:,}; nothing was taken from the queue. Peek fewer (batch_size)"
            )
        self.log.info("Peeked %d message(s) of queue %s (none leased, no attempt spent)", len(payload), queue)
        return payload
