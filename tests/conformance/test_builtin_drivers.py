"""Both built-in drivers meet the driver contract, each against its in-process emulator.

These are the contract's own checks (``sessionlog.conformance.contract``), collected here by
subclassing it, the way a third-party driver package runs them.
"""

from __future__ import annotations

from sessionlog.conformance.contract import DriverContract


class TestSimulatedDriverConformance(DriverContract):
    driver_name = "simulated"
    url = "sim://?channels=2&seed=7"
    device_watchdog_s = 1.0


class TestRehaStim2DriverConformance(DriverContract):
    driver_name = "rehastim2"
    url = "rehastim2://?seed=3"
    device_watchdog_s = 1.2
