"""Real-time driver of an emulated device: a background thread that advances its clock-driven
behaviour (watchdogs, periodic frames, delayed replies, scheduled unplug) every few milliseconds. A
thread that fails does not die quietly: it unplugs the emulator, so output stops and every later
port operation raises, and the error is kept for `raise_if_failed`. A driver package subclasses it
only to name its thread and its log, so a stuck or failed emulator is recognisable.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

from sessionlog_drivers.emulation.device import EmulatedDevice

DeviceT = TypeVar("DeviceT", bound=EmulatedDevice[Any, Any, Any, Any])


class EmulatorRunner(Generic[DeviceT]):
    """Context manager owning the tick thread of one emulator; `stop()` is idempotent."""

    THREAD_NAME: ClassVar[str] = "emulator"
    """Name of the tick thread, so tests and thread dumps can find it."""
    DEVICE_NAME: ClassVar[str] = "emulated device"
    """How the failure log names the device."""
    _log: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init__(self, emulator: DeviceT, tick_interval_s: float = 0.002) -> None:
        if tick_interval_s <= 0:
            raise ValueError("tick_interval_s must be positive")
        self.emulator = emulator
        self._tick_interval_s = tick_interval_s
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the tick thread, if it failed."""
        return self._error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("an EmulatorRunner is started once")
        self._thread = threading.Thread(target=self._run, name=self.THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking and wait for the thread; safe to call twice or before `start()`."""
        self._stop_requested.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def raise_if_failed(self) -> None:
        """Re-raise (as RuntimeError, chained) the failure of the tick thread, if any."""
        if self._error is not None:
            raise RuntimeError("emulator tick thread failed") from self._error

    def _run(self) -> None:
        try:
            while not self._stop_requested.wait(self._tick_interval_s):
                self.emulator.tick()
        except Exception as exc:
            self._error = exc
            self._log.exception("%s tick thread failed; unplugging the emulator", self.DEVICE_NAME)
            self.emulator.unplug()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
