"""pyserial URL handler for ``rehastim2://``: a serial port whose far end is an emulated RehaStim 2.

Once ``sessionlog_drivers.rehastim2`` is in ``serial.protocol_handler_packages`` (the HAL does this
from ``RehaStim2Driver.url_handler_package``), ``serial.serial_for_url("rehastim2://?seed=1")``
returns this ``Serial``, so the driver runs its real pyserial code path against the emulated
firmware. pyserial finds the handler by this module's name; the port itself is the shared
``emulation.serial_port.EmulatedSerial``. The query options are those of ``config.OPTION_NAMES``.
"""

from __future__ import annotations

from sessionlog_drivers.emulation.serial_port import EmulatedSerial
from sessionlog_drivers.rehastim2.config import query_to_settings
from sessionlog_drivers.rehastim2.emulator import RehaStim2Emulator
from sessionlog_drivers.rehastim2.runner import EmulatorRunner


class Serial(EmulatedSerial[RehaStim2Emulator]):
    """A pyserial port backed by a real-time ``RehaStim2Emulator``."""

    SCHEME = "rehastim2"
    DEVICE_NAME = "emulated RehaStim 2"
    RUNNER = EmulatorRunner

    def _create_emulator(self, query: str) -> RehaStim2Emulator:
        config, faults = query_to_settings(query)
        return RehaStim2Emulator(config, faults)
