"""
The message operators under one import path: push (:mod:`.push`), drain with per-message ack/retry
(:mod:`.consume`), and the split pull -> (your tasks) -> ack pattern (:mod:`.pull_ack`).
"""

from __future__ import annotations

from .base import CloudflareQueuesBaseOperator
from .consume import CloudflareQueuesPullAndAckOperator
from .pull_ack import CloudflareQueuesAckOperator, CloudflareQueuesPullOperator
from .push import CloudflareQueuesPushOperator

__all__ = [
    "CloudflareQueuesAckOperator",
    "CloudflareQueuesBaseOperator",
    "CloudflareQueuesPullAndAckOperator",
    "CloudflareQueuesPullOperator",
    "CloudflareQueuesPushOperator",
]
