"""Real-time driver of a ``RehaStim2Emulator``: the shared ``emulation.runner.EmulatorRunner``,
whose tick thread advances Init repetition, the watchdog, delayed answers and scheduled unplug,
named so the RehaStim 2 emulator's thread and failure log are recognisable.
"""

from __future__ import annotations

import logging

from sessionlog_drivers.emulation.runner import EmulatorRunner as _EmulatorRunner
from sessionlog_drivers.rehastim2.emulator import RehaStim2Emulator


class EmulatorRunner(_EmulatorRunner[RehaStim2Emulator]):
    """Context manager owning the tick thread of one emulator; ``stop()`` is idempotent."""

    THREAD_NAME = "rehastim2-emulator"
    DEVICE_NAME = "RehaStim 2 emulator"
    _log = logging.getLogger(__name__)
