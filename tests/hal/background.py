"""A driver call run on a thread of its own, so that a test can act while the call waits."""

from __future__ import annotations

import threading
from collections.abc import Callable


class InBackground:
    """Starts ``call`` at once on its own thread and keeps whatever it raised, for the test to
    judge after ``join``."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as error:
            self.errors.append(error)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout_s: float) -> bool:
        """Wait for the call to end; True if it did within ``timeout_s``."""
        self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()

    def raised(self) -> list[type[BaseException]]:
        return [type(error) for error in self.errors]
