"""The one decision function of the backlog sensor and trigger."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_provider_cfqueues.api.backlog import BacklogCriteria, evaluate
from airflow_provider_cfqueues.api.models import QueueMetrics

NOW_MS = 1_800_000_000_000


def metrics(count: int = 0, size: int = 0, oldest_age_s: float | None = None) -> QueueMetrics:
    oldest = 0 if oldest_age_s is None else int(NOW_MS - oldest_age_s * 1000)
    return QueueMetrics(backlog_count=count, backlog_bytes=size, oldest_message_timestamp_ms=oldest)


@pytest.mark.parametrize(
    ("criteria", "seen", "met"),
    [
        ({"min_backlog": 10}, metrics(9), False),
        ({"min_backlog": 10}, metrics(10), True),
        ({"max_backlog": 0}, metrics(0), True),
        ({"max_backlog": 0}, metrics(1), False),
        ({"min_backlog": 5, "max_backlog": 10}, metrics(11), False),
        ({"min_backlog_bytes": 1_000}, metrics(3, 999), False),
        ({"min_backlog_bytes": 1_000}, metrics(3, 1_000), True),
        ({"max_backlog_bytes": 10}, metrics(1, 11), False),
        ({"min_oldest_age": timedelta(minutes=5)}, metrics(1, 1, 299), False),
        ({"min_oldest_age": timedelta(minutes=5)}, metrics(1, 1, 300), True),
        ({"min_oldest_age": 60}, metrics(), False),  # an empty queue has no oldest message
        ({"max_oldest_age": 60}, metrics(), True),
        ({"max_oldest_age": 60}, metrics(1, 1, 61), False),
        ({"min_backlog": 1, "max_oldest_age": 60}, metrics(1, 1, 30), True),
        # "any": one threshold that holds is enough
        ({"min_backlog": 500, "min_oldest_age": 600, "match": "any"}, metrics(3, 3, 601), True),
        ({"min_backlog": 500, "min_oldest_age": 600, "match": "any"}, metrics(500, 3, 10), True),
        ({"min_backlog": 500, "min_oldest_age": 600, "match": "any"}, metrics(499, 3, 599), False),
        ({"min_backlog": 500, "min_oldest_age": 600}, metrics(3, 3, 601), False),  # "all", the default
        ({"min_backlog": 10, "max_backlog": 0, "match": "any"}, metrics(0), True),
    ],
)
def test_evaluate(criteria: dict[str, object], seen: QueueMetrics, met: bool) -> None:
    result, explanation = evaluate(BacklogCriteria.build(**criteria), seen, NOW_MS)  # type: ignore[arg-type]
    assert result is met
    assert explanation.startswith("met: " if met else "waiting for ")
    assert f"backlog_count={seen.backlog_count}" in explanation


def test_criteria_round_trip_as_primitives() -> None:
    criteria = BacklogCriteria.build(min_backlog="7", max_oldest_age=timedelta(hours=1))
    assert criteria.to_dict() == {
        "min_backlog": 7,
        "max_backlog": None,
        "min_backlog_bytes": None,
        "max_backlog_bytes": None,
        "min_oldest_age_seconds": None,
        "max_oldest_age_seconds": 3600.0,
        "match": "all",
    }
    assert BacklogCriteria(**criteria.to_dict()) == criteria
