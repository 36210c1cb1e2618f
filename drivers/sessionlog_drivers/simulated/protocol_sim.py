"""pyserial URL handler for `sim://`: a serial port whose far end is an in-process emulator.

After `register_url_handler()`, `serial.serial_for_url("sim://?channels=2&seed=1", timeout=0.1)`
returns this `Serial`, so a driver exercises its real pyserial code path against the emulated
firmware. pyserial finds the handler by this module's name; the port itself is the shared
`emulation.serial_port.EmulatedSerial`. The query options are those of `config.options_to_settings`.
"""

from __future__ import annotations

from sessionlog_drivers.emulation.serial_port import EmulatedSerial
from sessionlog_drivers.simulated.config import query_to_settings
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from sessionlog_drivers.simulated.runner import EmulatorRunner


class Serial(EmulatedSerial[StimulatorEmulator]):
    """A pyserial port backed by a real-time `StimulatorEmulator` (see `emulator`)."""

    SCHEME = "sim"
    DEVICE_NAME = "simulated device"
    RUNNER = EmulatorRunner

    def _create_emulator(self, query: str) -> StimulatorEmulator:
        config, faults = query_to_settings(query)
        return StimulatorEmulator(config, faults)
