"""The one set of rules for durations and counts a user writes (api/units.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.units import count, duration, to_ms, whole_seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), (2.5, 2.5), ("30", 30.0), (" 1.5 ", 1.5), (timedelta(minutes=2), 120.0), (None, None), ("", None)],
)
def test_duration_reads_seconds_timedeltas_and_rendered_templates(value: object, seconds: float | None) -> None:
    assert duration(value, "d") == seconds


@pytest.mark.parametrize("value", [True, "soon", float("nan"), float("inf"), [1], -1, timedelta(seconds=-1)])
def test_duration_refuses_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match="d must be"):
        duration(value, "d")


def test_duration_bounds_speak_seconds() -> None:
    with pytest.raises(CloudflareQueuesValidationError, match=r"from 0 to 10 seconds, got 11"):
        duration(11, "d", high=10)
    with pytest.raises(CloudflareQueuesValidationError, match="more than 0 seconds, got 0"):
        duration(0, "d", above_zero=True)
    assert duration(10, "d", high=10) == 10


def test_whole_seconds() -> None:
    assert whole_seconds(timedelta(hours=1), "delay") == 3600
    assert whole_seconds(3.0, "delay") == 3 and isinstance(whole_seconds(3.0, "delay"), int)
    with pytest.raises(CloudflareQueuesValidationError, match="whole seconds"):
        whole_seconds(timedelta(milliseconds=1500), "delay")
    with pytest.raises(CloudflareQueuesValidationError, match=">= 60 seconds"):
        whole_seconds(59, "retention", low=60)


@pytest.mark.parametrize(("value", "number"), [(3, 3), ("7", 7), (" 0 ", 0), (None, None), ("", None)])
def test_count_reads_whole_numbers(value: object, number: int | None) -> None:
    assert count(value, "n") == number


@pytest.mark.parametrize("value", [2.0, "2.5", True, timedelta(seconds=1), -1, 101, "many"])
def test_count_refuses_fractions_booleans_and_out_of_range(value: object) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match="n must be a whole number"):
        count(value, "n", high=100)


def test_to_ms_rounds_to_the_wire_unit() -> None:
    assert to_ms(1.5) == 1500 and to_ms(0.0004) == 0 and to_ms(43_200) == 43_200_000
