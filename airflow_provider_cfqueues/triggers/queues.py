"""
The triggers under one import path (kept for DAGs and for triggers serialized with it): the backlog
trigger (:mod:`.backlog`), the purge trigger (:mod:`.purge`) and the message trigger (:mod:`.message`,
imported on first use, so that importing the other two does not load the message stream).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backlog import CloudflareQueuesBacklogTrigger
from .purge import CloudflareQueuesPurgeTrigger

if TYPE_CHECKING:
    from .message import CloudflareQueuesMessageTrigger

__all__ = ["CloudflareQueuesBacklogTrigger", "CloudflareQueuesMessageTrigger", "CloudflareQueuesPurgeTrigger"]


def __getattr__(name: str) -> Any:
    if name == "CloudflareQueuesMessageTrigger":
        from .message import CloudflareQueuesMessageTrigger

        return CloudflareQueuesMessageTrigger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
