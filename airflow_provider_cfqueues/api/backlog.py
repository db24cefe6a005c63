"""
When is a backlog condition met? One pure function, :func:`evaluate`, used by the sensor's ``poke``
and by the trigger on the triggerer, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from .errors import CloudflareQueuesValidationError
from .models import QueueMetrics
from .units import count, duration

#: how the thresholds combine
MATCHES = ("all", "any")


@dataclass(frozen=True)
class BacklogCriteria:
    """
    Thresholds on a queue's metrics: every threshold that is set must hold (``match="all"``), or any one
    of them (``match="any"``). Primitives only, so the trigger serializes it as is.

    :param min_backlog: at least this many unacknowledged messages (work has piled up).
    :param max_backlog: at most this many (the queue is drained: ``max_backlog=0``).
    :param min_backlog_bytes: at least this many bytes of unacknowledged messages.
    :param max_backlog_bytes: at most this many bytes.
    :param min_oldest_age_seconds: the oldest unacknowledged message is at least this old.
    :param max_oldest_age_seconds: the oldest unacknowledged message is at most this old (or none).
    :param match: ``"all"`` (default): every threshold set must hold; ``"any"``: one is enough (at least
        500 messages *or* the oldest older than 10 minutes).
    """

    min_backlog: int | None = None
    max_backlog: int | None = None
    min_backlog_bytes: int | None = None
    max_backlog_bytes: int | None = None
    min_oldest_age_seconds: float | None = None
    max_oldest_age_seconds: float | None = None
    match: str = "all"

    @classmethod
    def build(
        cls,
        *,
        min_backlog: object = None,
        max_backlog: object = None,
        min_backlog_bytes: object = None,
        max_backlog_bytes: object = None,
        min_oldest_age: timedelta | float | None = None,
        max_oldest_age: timedelta | float | None = None,
        match: str = "all",
    ) -> BacklogCriteria:
        """Validate user input (counts may be templated strings) into criteria."""
        criteria = cls(
            min_backlog=count(min_backlog, "min_backlog"),
            max_backlog=count(max_backlog, "max_backlog"),
            min_backlog_bytes=count(min_backlog_bytes, "min_backlog_bytes"),
            max_backlog_bytes=count(max_backlog_bytes, "max_backlog_bytes"),
            min_oldest_age_seconds=duration(min_oldest_age, "min_oldest_age"),
            max_oldest_age_seconds=duration(max_oldest_age, "max_oldest_age"),
            match=match,
        )
        if match not in MATCHES:
            raise CloudflareQueuesValidationError(f"match must be one of {', '.join(MATCHES)}, got {match!r}")
        if all(value is None for key, value in asdict(criteria).items() if key != "match"):
            raise CloudflareQueuesValidationError(
                "set at least one threshold: min_backlog and/or max_backlog (or the bytes / age thresholds)"
            )
        for low, high in (
            ("min_backlog", "max_backlog"),
            ("min_backlog_bytes", "max_backlog_bytes"),
            ("min_oldest_age_seconds", "max_oldest_age_seconds"),
        ):
            lo, hi = getattr(criteria, low), getattr(criteria, high)
            if match == "all" and lo is not None and hi is not None and lo > hi:
                raise CloudflareQueuesValidationError(f"{low} ({lo}) is greater than {high} ({hi}): never met")
        return criteria

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(criteria: BacklogCriteria, metrics: QueueMetrics, now_ms: int) -> tuple[bool, str]:
    """
    ``(met, explanation)`` for ``metrics``. Ages are measured from when the service answered, by its
    clock (``metrics.observed_at_ms``), else from ``now_ms`` (the local clock, ms since the epoch).
    """
    now_ms = metrics.observed_at_ms or now_ms
    age = (now_ms - metrics.oldest_message_timestamp_ms) / 1000 if metrics.oldest_message_timestamp_ms else None
    unmet: list[str] = []
    checks: list[tuple[bool, str]] = []
    if criteria.min_backlog is not None:
        checks.append((metrics.backlog_count >= criteria.min_backlog, f"backlog_count >= {criteria.min_backlog}"))
    if criteria.max_backlog is not None:
        checks.append((metrics.backlog_count <= criteria.max_backlog, f"backlog_count <= {criteria.max_backlog}"))
    if criteria.min_backlog_bytes is not None:
        checks.append(
            (metrics.backlog_bytes >= criteria.min_backlog_bytes, f"backlog_bytes >= {criteria.min_backlog_bytes}")
        )
    if criteria.max_backlog_bytes is not None:
        checks.append(
            (metrics.backlog_bytes <= criteria.max_backlog_bytes, f"backlog_bytes <= {criteria.max_backlog_bytes}")
        )
    if criteria.min_oldest_age_seconds is not None:
        checks.append(
            (
                age is not None and age >= criteria.min_oldest_age_seconds,
                f"oldest message age >= {criteria.min_oldest_age_seconds:g} s",
            )
        )
    if criteria.max_oldest_age_seconds is not None:
        checks.append(
            (
                age is None or age <= criteria.max_oldest_age_seconds,
                f"oldest message age <= {criteria.max_oldest_age_seconds:g} s",
            )
        )
    seen = (
        f"backlog_count={metrics.backlog_count}, backlog_bytes={metrics.backlog_bytes}, "
        f"oldest age={'none' if age is None else f'{age:.1f} s'}"
    )
    if criteria.match == "any":
        held = [text for ok, text in checks if ok]
        if held:
            return True, f"met: {' or '.join(held)} ({seen})"
        return False, f"waiting for any of {' or '.join(text for _, text in checks)} ({seen})"
    unmet = [text for ok, text in checks if not ok]
    if unmet:
        return False, f"waiting for {', '.join(unmet)} ({seen})"
    return True, f"met: {', '.join(text for _, text in checks)} ({seen})"
