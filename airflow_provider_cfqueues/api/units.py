"""
Every duration and count a user writes, read by one set of rules: durations are seconds (an int or a
float; a string of one, as templates render) or a ``timedelta``; counts are whole numbers (or a
string of one). Booleans are not numbers; NaN and infinity are refused; errors speak the unit the
user wrote. Milliseconds exist only on the wire (:func:`to_ms`).
"""

from __future__ import annotations

import math
from datetime import timedelta

from .errors import CloudflareQueuesValidationError
from .limits import MAX_DELAY_SECONDS, MAX_PULL_BATCH_SIZE, MAX_VISIBILITY_TIMEOUT_MS

#: the longest lease a pull may ask for: 12 hours
MAX_LEASE_SECONDS = MAX_VISIBILITY_TIMEOUT_MS / 1000


def _number(value: object) -> float | None:
    """``value`` as a number, or ``None`` when it is not one (booleans are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _span(low: float, high: float | None, unit: str, *, above_low: bool = False) -> str:
    if above_low:
        return f"more than {low:g}{'' if high is None else f' and at most {high:g}'} {unit}".rstrip()
    if high is not None:
        return f"from {low:g} to {high:g} {unit}".rstrip()
    return f">= {low:g} {unit}".rstrip()


def duration(
    value: object,
    name: str,
    *,
    low: float = 0.0,
    high: float | None = None,
    whole: bool = False,
    above_zero: bool = False,
) -> float | None:
    """
    A duration in seconds, or ``None`` for ``None`` (and an empty templated string).

    :param low: the smallest allowed, in seconds.
    :param high: the largest allowed, in seconds.
    :param whole: only whole seconds (Cloudflare's delays).
    :param above_zero: ``low`` itself is not allowed.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    seconds = _number(value)
    bounds = _span(low, high, "seconds", above_low=above_zero)
    if seconds is None or not math.isfinite(seconds):
        raise CloudflareQueuesValidationError(f"{name} must be seconds or a timedelta, {bounds}, got {value!r}")
    if seconds < low or (above_zero and seconds <= low) or (high is not None and seconds > high):
        raise CloudflareQueuesValidationError(f"{name} must be {bounds}, got {value!r}")
    if whole and seconds != int(seconds):
        raise CloudflareQueuesValidationError(
            f"{name} must be whole seconds (Cloudflare takes no fractions), got {value!r}: round it"
        )
    return seconds


def interval(value: object, name: str) -> float:
    """A wait or a time limit that must be given: seconds (or a ``timedelta``), more than 0."""
    seconds = duration(value, name, above_zero=True)
    if seconds is None:
        raise CloudflareQueuesValidationError(f"{name} is needed: give seconds or a timedelta")
    return seconds


def whole_seconds(value: object, name: str, *, low: int = 0, high: int | None = None) -> int | None:
    """A duration in whole seconds (a delay, a retention period), or ``None``."""
    seconds = duration(value, name, low=low, high=high, whole=True)
    return None if seconds is None else int(seconds)


def count(value: object, name: str, *, low: int = 0, high: int | None = None) -> int | None:
    """A whole number (a templated string of one too), or ``None``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _number(value) if not isinstance(value, timedelta) else None
    bounds = _span(low, high, "")
    if number is None or not math.isfinite(number) or number != int(number) or isinstance(value, float):
        raise CloudflareQueuesValidationError(f"{name} must be a whole number {bounds}, got {value!r}")
    if number < low or (high is not None and number > high):
        raise CloudflareQueuesValidationError(f"{name} must be a whole number {bounds}, got {value!r}")
    return int(number)


def to_ms(seconds: float) -> int:
    """Seconds as the wire's milliseconds."""
    return round(seconds * 1000)


def delay_seconds(value: object, name: str = "delay_seconds") -> int | None:
    """A delay of a message, a batch or a retry: whole seconds from 0 to 24 hours, or ``None``."""
    return whole_seconds(value, name, high=MAX_DELAY_SECONDS)


def lease_seconds(value: object, name: str = "visibility_timeout") -> float | None:
    """How long a pull leases its messages: seconds (or a ``timedelta``) up to 12 hours, at least 1 ms;
    ``None`` leaves it to the consumer's setting."""
    try:
        seconds = duration(value, name, high=MAX_LEASE_SECONDS, above_zero=True)
    except CloudflareQueuesValidationError:
        seconds = -1.0
    if seconds is not None and to_ms(seconds) < 1:
        raise CloudflareQueuesValidationError(
            f"{name} must be seconds or a timedelta from 0.001 (1 ms) to {MAX_LEASE_SECONDS:g} (12 hours), "
            f"got {value!r}"
        )
    return seconds


def known_lease_seconds(value: object, name: str = "visibility_timeout") -> float:
    """:func:`lease_seconds` where the caller must know the lease (an operator that times its work)."""
    seconds = lease_seconds(value, name)
    if seconds is None:
        raise CloudflareQueuesValidationError(f"{name} is needed here: give seconds or a timedelta")
    return seconds


def lease_ms(value: object, name: str = "visibility_timeout") -> int | None:
    """:func:`lease_seconds` in the wire's milliseconds."""
    seconds = lease_seconds(value, name)
    return None if seconds is None else to_ms(seconds)


def batch_size(value: object, name: str = "batch_size") -> int | None:
    """Messages per pull: a whole number from 1 to 100, or ``None``."""
    return count(value, name, low=1, high=MAX_PULL_BATCH_SIZE)
