"""Polling for a condition that another thread or process makes true, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 5.0, *, interval_s: float = 0.005
) -> bool:
    """True as soon as ``condition()`` holds; its last value once ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()
