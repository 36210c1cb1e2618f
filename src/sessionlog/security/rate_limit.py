"""A sliding-window limit on login attempts per username and per client address.

Kept in memory: it protects one service process against password guessing; a deployment with several
processes behind a proxy should also limit at the proxy. A refused attempt is not even checked, so
the limit also bounds the argon2 work an attacker can cause.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable


class LoginRateLimiter:
    def __init__(
        self,
        *,
        attempts: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._attempts = attempts
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def retry_after_s(self, *keys: str) -> float:
        """Seconds until another attempt is allowed for every key (0: allowed now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                failures = self._failures[key]
                while failures and now - failures[0] > self._window_s:
                    failures.popleft()
                if len(failures) >= self._attempts:
                    wait = max(wait, self._window_s - (now - failures[0]))
        return wait

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self._failures[key].append(now)

    def succeeded(self, username_key: str) -> None:
        with self._lock:
            self._failures.pop(username_key, None)
