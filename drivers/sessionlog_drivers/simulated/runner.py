"""Real-time driver of a `StimulatorEmulator`: the shared `emulation.runner.EmulatorRunner`, whose
tick thread advances the watchdog, telemetry, delayed replies and scheduled unplug, named so the
simulated device's thread and failure log are recognisable.
"""

from __future__ import annotations

import logging

from sessionlog_drivers.emulation.runner import EmulatorRunner as _EmulatorRunner
from sessionlog_drivers.simulated.emulator import StimulatorEmulator


class EmulatorRunner(_EmulatorRunner[StimulatorEmulator]):
    """Context manager owning the tick thread of one emulator; `stop()` is idempotent."""

    THREAD_NAME = "sessionlog-sim-emulator"
    DEVICE_NAME = "simulated stimulator"
    _log = logging.getLogger(__name__)
