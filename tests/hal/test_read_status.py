"""Reading the device's own account of its output, and the latest telemetry, through the driver.

``read_status`` asks the device (GET_STATUS on the simulated stimulator, GetStimulationMode on the
RehaStim 2) rather than reporting what the host believes; the simulated driver also compares the
two every few heartbeats and faults on a mismatch, so that a stop or a fault lost on the line
cannot leave host and device disagreeing about whether current flows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionlog.hal import Driver, DriverState, HalError, SerialTransport, open_device
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.driver import SimulatedDriver
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from tests.hal.plans import ems_plan, start_output
from tests.hal.scripted_device import TIMEOUT_S, ScriptedDevice, encode
from tests.waiting import wait_until

PLAN = ems_plan(21, 22)


@pytest.fixture(params=["simulated", "rehastim2"])
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    url = {
        "simulated": "sim://?channels=2&seed=4&telemetry_hz=100",
        "rehastim2": "rehastim2://?seed=4",
    }
    with open_device(url[request.param], driver=request.param) as opened:
        yield opened


def test_the_status_is_read_from_the_device_through_each_state(driver: Driver) -> None:
    assert not driver.read_status().output_active
    start_output(driver, PLAN)
    running = driver.read_status()
    assert running.output_active
    assert running.channels_active == frozenset({1, 2})
    driver.stop()
    assert not driver.read_status().output_active
    assert driver.state is DriverState.STOPPED


def test_the_simulated_device_reports_what_each_channel_delivers() -> None:
    with open_device("sim://?channels=2&seed=4", driver="simulated") as driver:
        start_output(driver, PLAN)
        status = driver.read_status()
        assert status.amplitudes_ua == {1: 21_000, 2: 22_000}
        assert status.conditions == ()
        emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
        emulator.set_electrode_off(1)  # the emulator numbers channels from 0
        assert wait_until(lambda: "electrode_off" in driver.read_status().conditions)


def test_the_latest_telemetry_of_each_channel_is_kept() -> None:
    with open_device("sim://?channels=2&seed=4&telemetry_hz=100", driver="simulated") as driver:
        assert driver.latest_telemetry() == {}
        start_output(driver, PLAN)
        assert wait_until(lambda: set(driver.latest_telemetry()) == {1, 2})
        latest = driver.latest_telemetry()
        assert abs(latest[1].current_ua - 21_000) <= 200
        assert abs(latest[2].current_ua - 22_000) <= 200


def test_output_the_host_does_not_know_of_is_a_fault() -> None:
    # The device says channel 1 runs although the driver stopped it (as after a stop lost on the
    # line): the heartbeat's periodic status read sees the mismatch and faults the driver.
    device = ScriptedDevice()
    running_anyway = wire.Status(
        device_time_ms=1_000,
        flags=wire.DeviceFlags.NONE,
        channels=(
            wire.ChannelStatus(wire.ChannelState.RUNNING, wire.ChannelFlags(0), 20_000),
            wire.ChannelStatus(wire.ChannelState.IDLE, wire.ChannelFlags(0), 0),
        ),
    )

    def claim_output(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.GetStatus):
            return encode(frame.seq, running_anyway)
        return device.firmware_answer(frame)

    try:
        with open_device(device.url, driver="simulated") as driver:
            start_output(driver, PLAN)
            driver.stop()
            device.answer = claim_output
            assert wait_until(lambda: driver.state is DriverState.FAULTED, TIMEOUT_S)
            assert "delivers output on channel(s) 1 while the driver is stopped" in (
                driver.fault_reason or ""
            )
            assert device.has_received(wire.Command.GET_STATUS)
    finally:
        device.close()


def test_a_driver_without_a_status_read_says_so_and_sends_nothing() -> None:
    class Mute(SimulatedDriver):
        _read_status = Driver._read_status

    with Mute(SerialTransport("sim://?channels=2&seed=4", Mute.serial_settings)) as driver:
        driver.connect()
        with pytest.raises(HalError, match="cannot read its device's status"):
            driver.read_status()
        assert driver.state is DriverState.READY


def _status(
    flags: wire.DeviceFlags, *channels: tuple[wire.ChannelState, wire.ChannelFlags, int]
) -> wire.Status:
    return wire.Status(
        device_time_ms=1_000,
        flags=flags,
        channels=tuple(wire.ChannelStatus(*channel) for channel in channels),
    )


RUNNING = wire.ChannelState.RUNNING
NO_FLAGS = wire.ChannelFlags(0)

CONTRADICTIONS = {
    # A hardware fault stopped the output, and its FAULT frame was lost on the line.
    "stopped by a fault": (
        _status(
            wire.DeviceFlags.HARDWARE_FAULT,
            (wire.ChannelState.IDLE, NO_FLAGS, 0),
            (wire.ChannelState.IDLE, NO_FLAGS, 0),
        ),
        "device check: the device reports hardware_fault while the driver is running",
    ),
    "a channel idle": (
        _status(
            wire.DeviceFlags.NONE,
            (RUNNING, NO_FLAGS, 21_000),
            (wire.ChannelState.IDLE, NO_FLAGS, 0),
        ),
        "device check: the device delivers no output on channel 2 while the driver is running",
    ),
    "another amplitude": (
        _status(wire.DeviceFlags.NONE, (RUNNING, NO_FLAGS, 21_000), (RUNNING, NO_FLAGS, 30_000)),
        "device check: the device delivers 30000 µA on channel 2 where 22000 µA was commanded",
    ),
}


@pytest.mark.parametrize(("status", "reason"), CONTRADICTIONS.values(), ids=CONTRADICTIONS.keys())
def test_a_device_that_stopped_or_changed_its_output_unreported_faults_the_driver(
    status: wire.Status, reason: str
) -> None:
    device = ScriptedDevice()

    def report(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.GetStatus):
            return encode(frame.seq, status)
        return device.firmware_answer(frame)

    try:
        with open_device(device.url, driver="simulated") as driver:
            start_output(driver, PLAN)
            device.answer = report
            assert wait_until(lambda: driver.state is DriverState.FAULTED, TIMEOUT_S)
            assert reason in (driver.fault_reason or "")
            assert wait_until(lambda: device.has_received(wire.Command.EMERGENCY_STOP), TIMEOUT_S)
    finally:
        device.close()


def test_a_channel_paused_by_the_device_for_an_electrode_off_is_no_contradiction() -> None:
    with open_device("sim://?channels=2&seed=4", driver="simulated") as driver:
        start_output(driver, PLAN)
        emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
        emulator.set_electrode_off(0)
        checks = _status_reads(emulator)
        assert wait_until(lambda: _status_reads(emulator) >= checks + 2, TIMEOUT_S)
        assert driver.state is DriverState.RUNNING


def test_a_channel_left_paused_after_its_electrode_is_back_is_no_contradiction() -> None:
    with open_device("sim://?channels=2&seed=4", driver="simulated") as driver:
        start_output(driver, PLAN)
        emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
        emulator.set_electrode_off(0)
        assert wait_until(lambda: driver.read_status().channels_paused == {1})
        emulator.set_electrode_off(0, False)  # back on: the device keeps the channel paused
        status = driver.read_status()
        assert "electrode_off" not in status.conditions
        assert status.channels_paused == {1}
        checks = _status_reads(emulator)
        assert wait_until(lambda: _status_reads(emulator) >= checks + 2, TIMEOUT_S)
        assert driver.state is DriverState.RUNNING, driver.fault_reason


def test_the_latched_emergency_stop_flag_is_no_contradiction_once_the_driver_stopped() -> None:
    with open_device("sim://?channels=2&seed=4", driver="simulated") as driver:
        start_output(driver, PLAN)
        driver.emergency_stop()
        emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
        assert "emergency_stopped" in driver.read_status().conditions
        checks = _status_reads(emulator)
        assert wait_until(lambda: _status_reads(emulator) >= checks + 2, TIMEOUT_S)
        assert driver.state is DriverState.STOPPED


def _status_reads(emulator: StimulatorEmulator) -> int:
    return sum(1 for e in emulator.command_log if e.command is wire.Command.GET_STATUS)
