"""Clocks for the emulator: the real one, and a manual one that tests advance instead of sleeping."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Anything with ``now()`` returning seconds since the Unix epoch as a float."""

    def now(self) -> float: ...


class SystemClock:
    """
    Wall-clock time (``time.time()``), which tests may move ahead: time keeps flowing, and
    :meth:`advance` skips over a wait (a retry delay, the hour until the next scheduled run).
    """

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Skip ``seconds`` ahead and return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        return self.now()


class ManualClock:
    """
    A clock that only moves when told to, so tests can expire leases and delays without sleeping.

    :param start: the initial time in seconds since the Unix epoch (defaults to the current time, so
        that ``timestamp_ms`` values look realistic).
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("a ManualClock only moves forward")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, timestamp: float) -> None:
        """Jump to ``timestamp`` (seconds since the epoch); it may not be earlier than now."""
        with self._lock:
            if timestamp < self._now:
                raise ValueError("a ManualClock only moves forward")
            self._now = float(timestamp)
