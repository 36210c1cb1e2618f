"""Monotonic clocks for device emulators: the real one for live use and a hand-driven one that
makes watchdog, telemetry and latency behaviour exactly reproducible in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Clock = Callable[[], float]
"""A monotonic time source in seconds, like `time.monotonic`."""


class ManualClock:
    """A clock that only moves when told to; safe to read from several threads."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now_s

    def advance(self, seconds: float) -> float:
        """Move time forward (never backward, as a monotonic clock must) and return the new time."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backward")
        with self._lock:
            self._now_s += seconds
            return self._now_s
