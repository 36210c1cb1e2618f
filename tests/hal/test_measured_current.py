"""A channel that measures more current than the driver commanded faults the driver.

The limits engine judges what is sent; this is the backstop for what the output stage then does
(a device defect, a command the device misread): the driver compares each telemetry reading with
the amplitude it commanded, or with none while output is off, and fails safe on an excess. The
device is played over a real socket, so the test sets exactly what it "measures".
"""

from __future__ import annotations

import pytest

from sessionlog.hal import DeviceFaultError, DriverState, open_device
from sessionlog.safety import StimulationPlan
from sessionlog_drivers.simulated import protocol as wire
from tests.hal.plans import change, ems_plan, start_output
from tests.hal.scripted_device import TIMEOUT_S, ScriptedDevice, encode
from tests.waiting import wait_until

PLAN = ems_plan(20)


def measuring(device: ScriptedDevice, current_ua: int) -> None:
    """From now on the device answers every heartbeat with a reading of ``current_ua`` on
    channel 1, as a device streams its measurements."""

    def answer(frame: wire.Frame) -> bytes:
        reply = device.firmware_answer(frame)
        if isinstance(frame.message, wire.Heartbeat):
            sample = wire.TelemetrySample(0, current_ua, 900)
            reply += encode(0, wire.Telemetry(5_000, (sample,)))
        return reply

    device.answer = answer


def test_a_current_well_above_the_commanded_amplitude_faults_the_driver(
    device: ScriptedDevice,
) -> None:
    with open_device(device.url, driver="simulated") as driver:
        start_output(driver, PLAN)
        measuring(device, 26_000)  # 30 % above the 20 mA commanded

        assert wait_until(lambda: driver.state is DriverState.FAULTED, TIMEOUT_S)
        assert "channel 1 measures 26000 µA where 20000 µA was commanded" in (
            driver.fault_reason or ""
        )
        assert wait_until(lambda: device.has_received(wire.Command.EMERGENCY_STOP), TIMEOUT_S)


def test_current_measured_while_output_is_off_faults_the_driver(device: ScriptedDevice) -> None:
    with open_device(device.url, driver="simulated") as driver:
        start_output(driver, PLAN)
        driver.stop()
        measuring(device, 5_000)

        assert wait_until(lambda: driver.state is DriverState.FAULTED, TIMEOUT_S)
        assert "measures 5000 µA where 0 µA was commanded (driver stopped)" in (
            driver.fault_reason or ""
        )


def test_a_current_within_the_tolerance_is_a_reading_not_a_fault(device: ScriptedDevice) -> None:
    with open_device(device.url, driver="simulated") as driver:
        start_output(driver, PLAN)
        measuring(device, 21_000)  # 5 % above: measurement noise and the output stage's accuracy

        assert wait_until(lambda: driver.counters.telemetry_readings >= 3, TIMEOUT_S)
        assert driver.state is DriverState.RUNNING
        assert driver.latest_telemetry()[1].current_ua == 21_000


MICROCURRENT_PLAN = StimulationPlan.model_validate(
    {
        "modality": "microcurrent",
        "duration_s": 600,
        "electrode": {"body_site": "forearm", "area_cm2": 10},
        "channels": [{"channel": 1, "amplitude_ua": 20, "pulse_width_us": 500, "frequency_hz": 10}],
    }
)


def test_a_fivefold_microcurrent_excess_faults_although_it_is_below_the_ems_margin(
    device: ScriptedDevice,
) -> None:
    with open_device(device.url, driver="simulated") as driver:
        start_output(driver, MICROCURRENT_PLAN)
        measuring(device, 115)  # 95 µA over 20 µA: inside EMS's 100 µA margin, not microcurrent's

        assert wait_until(lambda: driver.state is DriverState.FAULTED, TIMEOUT_S)
        assert "channel 1 measures 115 µA where 20 µA was commanded" in (driver.fault_reason or "")


def test_a_microcurrent_reading_within_its_margin_is_a_reading(device: ScriptedDevice) -> None:
    with open_device(device.url, driver="simulated") as driver:
        start_output(driver, MICROCURRENT_PLAN)
        measuring(device, 31)  # 20 µA + 10 % + 10 µA is 32 µA

        assert wait_until(lambda: driver.counters.telemetry_readings >= 3, TIMEOUT_S)
        assert driver.state is DriverState.RUNNING


def measuring_on_changes(device: ScriptedDevice, factor: float) -> None:
    """From now on the device answers each amplitude change with a reading of ``factor`` times
    the new amplitude, sent before the acknowledgement: the command's own thread reads it while
    the change is still in progress."""

    def answer(frame: wire.Frame) -> bytes:
        reply = device.firmware_answer(frame)
        message = frame.message
        if isinstance(message, wire.SetAmplitude):
            current_ua = round(message.amplitude_ua * factor)
            sample = wire.TelemetrySample(message.channel, current_ua, 900)
            reply = encode(0, wire.Telemetry(5_000, (sample,))) + reply
        return reply

    device.answer = answer


def test_an_excess_measured_while_a_live_change_is_in_progress_faults_the_driver(
    device: ScriptedDevice,
) -> None:
    with open_device(device.url, driver="simulated") as driver:
        approved = start_output(driver, PLAN)
        measuring_on_changes(device, 3)

        with pytest.raises(DeviceFaultError, match="faulted while it was in progress"):
            driver.set_amplitude(change(approved, 25_000), channel=1)
        assert driver.state is DriverState.FAULTED
        assert "channel 1 measures 75000 µA where 25000 µA was commanded" in (
            driver.fault_reason or ""
        )
        assert wait_until(lambda: device.has_received(wire.Command.EMERGENCY_STOP), TIMEOUT_S)


def test_the_new_amplitude_measured_before_its_acknowledgement_is_a_reading(
    device: ScriptedDevice,
) -> None:
    with open_device(device.url, driver="simulated") as driver:
        approved = start_output(driver, PLAN)
        measuring_on_changes(device, 1)
        louder = change(approved, 30_000)
        driver.set_amplitude(louder, channel=1)  # 30 mA measured while 20 mA is held
        measuring_on_changes(device, 1.5)
        # Lowering to 20 mA, the device still measures 30 mA before it acknowledges: the
        # reading is judged against the 30 mA held, not the 20 mA on its way.
        driver.set_amplitude(change(louder, 20_000), channel=1)

        assert driver.state is DriverState.RUNNING
        assert driver.latest_telemetry()[1].current_ua == 30_000
