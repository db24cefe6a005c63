"""
The Cloudflare Queues API client without I/O: models, validation and request building, answer
parsing, errors and retry decisions, and the operations as effect-yielding flows. The hook in
:mod:`airflow_provider_cfqueues.hooks.queues` sends what this package builds.
"""

from __future__ import annotations

from .errors import (
    CloudflareQueuesAckError,
    CloudflareQueuesApiError,
    CloudflareQueuesAuthError,
    CloudflareQueuesBadRequestError,
    CloudflareQueuesConfigError,
    CloudflareQueuesConflictError,
    CloudflareQueuesDeliveryPausedError,
    CloudflareQueuesError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesPartialFailure,
    CloudflareQueuesPullNotEnabledError,
    CloudflareQueuesPushError,
    CloudflareQueuesRateLimitError,
    CloudflareQueuesResponseError,
    CloudflareQueuesServerError,
    CloudflareQueuesStaleNameError,
    CloudflareQueuesTransportError,
    CloudflareQueuesValidationError,
)
from .models import AckResult, OutgoingMessage, PulledMessage, PullResult, PushResult, Queue, QueueMetrics
from .retry import RetryPolicy

__all__ = [
    "AckResult",
    "CloudflareQueuesAckError",
    "CloudflareQueuesApiError",
    "CloudflareQueuesAuthError",
    "CloudflareQueuesBadRequestError",
    "CloudflareQueuesConfigError",
    "CloudflareQueuesConflictError",
    "CloudflareQueuesDeliveryPausedError",
    "CloudflareQueuesError",
    "CloudflareQueuesNotFoundError",
    "CloudflareQueuesPartialFailure",
    "CloudflareQueuesPullNotEnabledError",
    "CloudflareQueuesPushError",
    "CloudflareQueuesRateLimitError",
    "CloudflareQueuesResponseError",
    "CloudflareQueuesServerError",
    "CloudflareQueuesStaleNameError",
    "CloudflareQueuesTransportError",
    "CloudflareQueuesValidationError",
    "OutgoingMessage",
    "PullResult",
    "PulledMessage",
    "PushResult",
    "Queue",
    "QueueMetrics",
    "RetryPolicy",
]
