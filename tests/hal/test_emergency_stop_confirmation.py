"""An emergency stop the device does not acknowledge faults the driver, which ends the heartbeat.

``emergency_stop`` writes at once and returns; the heartbeat thread then checks that the device
acknowledged the stop within the reply timeout. A stop lost on the line or refused must not leave
the host (and the session record) believing output is off while the heartbeat keeps feeding the
device's watchdog: the driver faults, its heartbeat stops, and the watchdog ends the output.
"""

from __future__ import annotations

import time

from sessionlog.hal import DriverState, open_device
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from tests.hal.plans import ems_plan, start_output
from tests.hal.scripted_device import TIMEOUT_S, ScriptedDevice, encode
from tests.waiting import wait_until

PLAN = ems_plan(20)


def heartbeats(device: ScriptedDevice) -> int:
    return device.commands().count(wire.Command.HEARTBEAT)


def test_an_emergency_stop_lost_on_the_line_faults_the_driver_and_ends_the_heartbeat(
    device: ScriptedDevice,
) -> None:
    def lose_the_stop(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.EmergencyStop):
            return b""  # as if the frame never arrived: no acknowledgement
        return device.firmware_answer(frame)

    device.answer = lose_the_stop
    with open_device(device.url, driver="simulated") as driver:
        start_output(driver, PLAN)
        driver.emergency_stop()
        assert driver.state is DriverState.STOPPED  # the call itself does not wait

        assert wait_until(lambda: driver.state is DriverState.FAULTED, TIMEOUT_S)
        assert "emergency stop not acknowledged" in (driver.fault_reason or "")
        assert driver.counters.reply_timeouts >= 1
        sent_at_fault = heartbeats(device)
        # Absence takes a wait: three heartbeat intervals, with at most one heartbeat that was
        # already on its way when the driver faulted.
        time.sleep(3 * driver.heartbeat_interval_s)
        assert heartbeats(device) <= sent_at_fault + 1


def test_an_emergency_stop_the_device_refuses_faults_the_driver(device: ScriptedDevice) -> None:
    def refuse_the_stop(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.EmergencyStop):
            return encode(frame.seq, wire.Nak(frame.command, wire.ErrorCode.HARDWARE_FAULT))
        return device.firmware_answer(frame)

    device.answer = refuse_the_stop
    with open_device(device.url, driver="simulated") as driver:
        start_output(driver, PLAN)
        driver.emergency_stop()

        assert wait_until(lambda: driver.state is DriverState.FAULTED, TIMEOUT_S)
        assert "emergency stop refused by the device: hardware_fault" in (driver.fault_reason or "")
        assert driver.counters.refusals == 1


def test_an_acknowledged_emergency_stop_leaves_the_driver_stopped_and_usable() -> None:
    with open_device("sim://?channels=2&seed=5", driver="simulated") as driver:
        emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
        start_output(driver, PLAN)
        driver.emergency_stop()
        assert wait_until(lambda: not emulator.output_active, TIMEOUT_S)

        # Past the reply timeout and the heartbeat's next check, the stop counts as confirmed.
        time.sleep(driver.reply_timeout_s + 2 * driver.heartbeat_interval_s)
        assert driver.state is DriverState.STOPPED
        assert driver.fault_reason is None
        assert driver.counters.unmatched_replies == 0  # the stop's ACK answered its confirmation

        start_output(driver, PLAN)
        assert driver.state is DriverState.RUNNING
        assert emulator.output_active
