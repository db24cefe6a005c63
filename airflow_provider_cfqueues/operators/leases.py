"""
Leases taken for XCom (the Pull operator, and PullAndAck without ``process``), given back on
errors, and poison messages pushed to another queue.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection
from typing import Any

from ..api.errors import CloudflareQueuesDeliveryPausedError, CloudflareQueuesError, CloudflareQueuesValidationError
from ..api.models import OutgoingMessage, PulledMessage
from ..hooks.queues import CloudflareQueuesHook


def poison_queue_router(hook: CloudflareQueuesHook, queue_id: str) -> Callable[[PulledMessage], None]:
    """An ``on_poison`` that pushes the message to another queue (bytes/v8 bodies wrapped in JSON)."""

    lock = threading.Lock()  # the workers share this hook's session

    def route(message: PulledMessage) -> None:
        if message.content_type in ("text", "json") and message.decode_error is None:
            body: Any = message.body
            content_type: str = message.content_type
        else:
            body = {"raw_body": message.raw_body, "content_type": message.content_type}
            content_type = "json"
        outgoing = OutgoingMessage(body=body, content_type=content_type)  # type: ignore[arg-type]
        with lock:
            hook.push_message(outgoing, queue=queue_id)

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
) -> tuple[list[PulledMessage], list[dict[str, Any]], int]:
    """
    Pull until the queue is empty or a quota is reached, keeping every lease; return the messages,
    their XCom form and the number of pulls that returned messages. Past ``max_xcom_bytes`` every
    lease taken is released (retried at once) and :class:`XComLimitError` is raised: nothing is lost.
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
        try:
            result = hook.pull_messages(queue=queue, batch_size=wanted, visibility_timeout=visibility_timeout)
        except CloudflareQueuesDeliveryPausedError:
            if not messages:
                raise
            log.warning("Delivery of the queue was paused after %d message(s): returning those", len(messages))
            break
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
                f"{max_xcom_bytes:,}; their leases were released (each release spends one delivery attempt), "
                "nothing was lost. XCom is not a data channel: lower max_messages, or process the messages "
                "inside the task with process="
            )
    log.info("Pulled %d message(s) in %d batch(es); backlog %s", len(messages), batches, backlog)
    return messages, payload, batches


def release_on_error(
    hook: CloudflareQueuesHook, queue: str | None, messages: Collection[PulledMessage], log: Any, error: BaseException
) -> None:
    """Best effort: give leases back at once after a failure (they would come back on expiry anyway)."""
    if not messages:
        return
    try:
        hook.ack_messages(queue=queue, retries=[(m, 0) for m in messages])
        log.warning("Released %d lease(s) after %s", len(messages), type(error).__name__)
    except CloudflareQueuesError as release_error:
        log.warning("Could not release %d lease(s) (%s); they come back when they expire", len(messages), release_error)
