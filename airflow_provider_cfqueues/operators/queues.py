"""
The message operators under one import path: push (:mod:`.push`), drain with per-message ack/retry
(:mod:`.consume`), the split pull -> (your tasks) -> ack pattern (:mod:`.pull_ack`), and peek / purge by
reference (:mod:`.peek`, :mod:`.purge`).
"""

from __future__ import annotations

from .base import CloudflareQueuesBaseOperator
from .consume import CloudflareQueuesPullAndAckOperator
from .peek import CloudflareQueuesPeekOperator
from .pull_ack import CloudflareQueuesAckOperator, CloudflareQueuesPullOperator
from .purge import CloudflareQueuesPurgeMessagesOperator
from .push import CloudflareQueuesPushOperator

__all__ = [
    "CloudflareQueuesAckOperator",
    "CloudflareQueuesBaseOperator",
    "CloudflareQueuesPeekOperator",
    "CloudflareQueuesPullAndAckOperator",
    "CloudflareQueuesPullOperator",
    "CloudflareQueuesPurgeMessagesOperator",
    "CloudflareQueuesPushOperator",
]
