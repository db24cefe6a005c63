"""Leases given back after an error."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..api.errors import CloudflareQueuesError
from ..api.models import PulledMessage

if TYPE_CHECKING:  # the hook is passed in: nothing here imports an Airflow class
    from ..hooks.queues import CloudflareQueuesHook


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
