"""Leases given back after an error, and poison messages pushed to another queue."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from typing import Any

from ..api.errors import CloudflareQueuesError
from ..api.models import PulledMessage
from ..hooks.queues import CloudflareQueuesHook


def poison_queue_router(hook: CloudflareQueuesHook, queue_id: str) -> Callable[[PulledMessage], None]:
    """An ``on_poison`` that pushes the message to another queue (bytes/v8 bodies wrapped in JSON)."""

    lock = threading.Lock()  # the workers share this hook's session

    def route(message: PulledMessage) -> None:
        with lock:
            hook.push_message(message.forwarded(), queue=queue_id)

    return route


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
