"""The emulator clocks under their historical name, so `simulated.clock` imports keep working; the
implementation is shared by every emulator and lives in `emulation.clock`.
"""

from __future__ import annotations

from sessionlog_drivers.emulation.clock import Clock, ManualClock

__all__ = ["Clock", "ManualClock"]
