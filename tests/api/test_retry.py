"""Retry decisions and Retry-After parsing."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_provider_cfqueues.api.errors import (
    CloudflareQueuesAuthError,
    CloudflareQueuesBadRequestError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesRateLimitError,
    CloudflareQueuesResponseError,
    CloudflareQueuesServerError,
    CloudflareQueuesTransportError,
    CloudflareQueuesValidationError,
)
from airflow_provider_cfqueues.api.retry import RetryPolicy, parse_retry_after


def policy(**kwargs: object) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


def test_transient_errors_are_retried_with_growing_jittered_backoff() -> None:
    retry = policy(initial_backoff=1, max_backoff=8, max_attempts=10, total_timeout=1_000)
    error = CloudflareQueuesServerError("boom", status=503)
    delays = [retry.next_delay(attempt, error, elapsed=0) for attempt in range(1, 8)]
    assert all(d is not None for d in delays)
    ceilings = [1, 2, 4, 8, 8, 8, 8]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))  # type: ignore[operator]
    assert len(set(delays)) == len(delays)  # jittered


@pytest.mark.parametrize(
    "error",
    [
        CloudflareQueuesServerError("x", status=500),
        CloudflareQueuesRateLimitError("x", status=429),
        CloudflareQueuesTransportError("reset"),
    ],
)
def test_retryable(error: Exception) -> None:
    assert policy().next_delay(1, error, 0) is not None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        CloudflareQueuesAuthError("x", status=403),
        CloudflareQueuesNotFoundError("x", status=404),
        CloudflareQueuesBadRequestError("x", status=400),
        CloudflareQueuesValidationError("x"),
        CloudflareQueuesResponseError("x"),
    ],
)
def test_never_retried(error: Exception) -> None:
    assert policy().next_delay(1, error, 0) is None  # type: ignore[arg-type]


def test_bounded_in_attempts_and_time() -> None:
    error = CloudflareQueuesServerError("x", status=500)
    assert policy(max_attempts=3).next_delay(2, error, 0) is not None
    assert policy(max_attempts=3).next_delay(3, error, 0) is None
    assert policy(initial_backoff=0, total_timeout=10).next_delay(1, error, elapsed=10.5) is None
    assert RetryPolicy(max_attempts=1).next_delay(1, error, 0) is None


def test_retry_after_is_honoured_and_capped() -> None:
    throttled = CloudflareQueuesRateLimitError("x", status=429, retry_after=7)
    assert policy(initial_backoff=0.1).next_delay(1, throttled, 0) == 7
    blocked = CloudflareQueuesRateLimitError("x", status=429, retry_after=300)  # the service's 5-minute block
    assert policy().next_delay(1, blocked, 0) == 300  # waited for by default (max_retry_wait=300)
    assert policy(max_retry_wait=60).next_delay(1, blocked, 0) is None
    # a wait the service asked for is bounded by max_retry_wait, not by total_timeout
    assert policy(total_timeout=5).next_delay(1, throttled, 0) == 7


def test_invalid_policies() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(initial_backoff=-1)


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("30") == 30
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(" 0 ") == 0
    assert parse_retry_after("-4") == 0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now=now) == 0
    for unreadable in (None, "", "soon", "inf", "nan"):
        assert parse_retry_after(unreadable) is None
