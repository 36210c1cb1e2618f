"""The RehaStim 2 driver on the HAL base class, over a real pyserial path to the emulated device.

Every check of what reached the device reads the emulator's log of decoded commands, and every
fault comes from the emulator's own fault injection, not from a mock.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from sessionlog.hal import (
    DeviceFaultError,
    DeviceFaultReport,
    DriverState,
    HalError,
    InvalidStateError,
    SerialTransport,
    available_drivers,
    open_device,
)
from sessionlog.safety.limits import LimitsEngine
from sessionlog.safety.plan import Modality, StimulationPlan
from sessionlog.safety.verdict import ApprovedPlan, Layer, ViolationCode
from sessionlog_drivers.rehastim2 import protocol as wire
from sessionlog_drivers.rehastim2.driver import (
    EMERGENCY_STOP_PACKET_NUMBER,
    RehaStim2Driver,
    UnencodablePlanError,
)
from sessionlog_drivers.rehastim2.emulator import RehaStim2Emulator
from tests.drivers.rehastim2.conftest import emulator_of
from tests.waiting import wait_until

ENGINE = LimitsEngine()
Opener = Callable[..., RehaStim2Driver]


def sent(driver: RehaStim2Driver, command: wire.Command) -> list[Any]:
    return [e.message for e in emulator_of(driver).command_log if e.command is command]


def ems_plan(
    amplitude_ma: float = 30,
    channels: tuple[int, ...] = (1, 2),
    frequency_hz: float = 40,
    area_cm2: float = 50,
    **channel: Any,
) -> StimulationPlan:
    return StimulationPlan.model_validate(
        {
            "modality": "ems",
            "duration_s": 600,
            "electrode": {"body_site": "thigh_anterior", "area_cm2": area_cm2},
            "channels": [
                {
                    "channel": number,
                    "amplitude_ma": amplitude_ma,
                    "pulse_width_us": 300,
                    "frequency_hz": frequency_hz,
                    **channel,
                }
                for number in channels
            ],
        }
    )


def approve(driver: RehaStim2Driver, plan: StimulationPlan) -> ApprovedPlan:
    verdict = ENGINE.approve(plan, capabilities=driver.capabilities)
    assert verdict.approved_plan is not None, verdict.reasons
    return verdict.approved_plan


@pytest.fixture
def running(open_rehastim: Opener) -> RehaStim2Driver:
    driver = open_rehastim()
    driver.apply(approve(driver, ems_plan()))
    driver.start()
    assert emulator_of(driver).output_active
    return driver


# ------------------------------------------------------------------------------ connection


def test_handshake_answers_the_devices_init_and_proves_the_link(open_rehastim: Opener) -> None:
    driver = open_rehastim("version=1")
    emulator = emulator_of(driver)
    log = emulator.command_log
    assert log[0].message == wire.InitAck(wire.AckResult.OK)
    assert log[0].packet_number == 0, "InitAck echoes the packet number of the device's Init"
    assert log[1].command is wire.Command.GET_STIMULATION_MODE
    assert emulator.connected
    assert driver.identity.firmware_version == "ScienceMode2 protocol version 1"
    port = driver.transport.port
    assert (port.baudrate, port.bytesize, port.parity, port.stopbits) == (460_800, 8, "E", 1)


def test_an_incompatible_protocol_version_is_refused_with_minus_5() -> None:
    transport = SerialTransport("rehastim2://?version=3", RehaStim2Driver.serial_settings)
    emulator: RehaStim2Emulator = transport.port.emulator  # type: ignore[attr-defined]
    driver = RehaStim2Driver(transport)
    with pytest.raises(HalError, match=r"protocol version 3.*−5"):
        driver.connect()
    assert [e.message for e in emulator.command_log] == [
        wire.InitAck(wire.AckResult.INCOMPATIBLE_VERSION)
    ]
    assert not emulator.connected
    assert driver.state is DriverState.CLOSED


def test_a_silent_device_fails_the_handshake_with_a_clear_error() -> None:
    transport = SerialTransport("rehastim2://?drop_rate=1", RehaStim2Driver.serial_settings)
    with pytest.raises(HalError, match=r"no Init from a RehaStim 2.*ScienceMode2"):
        RehaStim2Driver(transport).connect()


def test_open_device_finds_the_driver_by_name() -> None:
    assert "rehastim2" in available_drivers()
    with open_device("rehastim2://?seed=1", driver="rehastim2") as driver:
        assert isinstance(driver, RehaStim2Driver)
        assert driver.state is DriverState.READY


# ------------------------------------------------------------------------------ capabilities


def test_capabilities_are_those_scienceMode2_can_carry(open_rehastim: Opener) -> None:
    capabilities = open_rehastim().capabilities
    assert capabilities.supported_modalities == {Modality.EMS}
    assert capabilities.channel_count == 8
    ems = capabilities.modalities[Modality.EMS]
    assert (ems.amplitude_min_ua, ems.amplitude_max_ua, ems.amplitude_step_ua) == (0, 130_000, 1000)
    assert (ems.pulse_width_min_us, ems.pulse_width_max_us) == (20, 500)
    assert capabilities.min_main_stimulation_interval_ms == 8
    assert capabilities.max_power_density_w_per_cm2 == 0.1
    assert capabilities.max_current_density_ma_per_cm2 == 2.0


def test_microcurrent_plan_is_refused_by_the_device_layer(open_rehastim: Opener) -> None:
    driver = open_rehastim()
    plan = StimulationPlan.model_validate(
        {
            "modality": "microcurrent",
            "duration_s": 600,
            "electrode": {"body_site": "lower_back", "area_cm2": 20},
            "channels": [
                {"channel": 1, "amplitude_ua": 300, "pulse_width_us": 200_000, "frequency_hz": 2}
            ],
        }
    )
    verdict = ENGINE.approve(plan, capabilities=driver.capabilities)
    assert verdict.approved_plan is None
    (violation,) = [v for v in verdict.violations if v.layer is Layer.DEVICE]
    assert violation.code is ViolationCode.MODALITY_UNSUPPORTED
    assert "does not support microcurrent" in violation.message


DENSE = ems_plan(amplitude_ma=130, frequency_hz=50, area_cm2=2, pulse_width_us=500)
"""29 mA rms on 2 cm²: 14.5 mA/cm² and 0.21 W/cm² at 500 Ω, above the IFU's 2 mA/cm² and
0.1 W/cm² but below the standard profile's 0.25 W/cm² hard limit."""


@pytest.mark.parametrize(
    ("plan", "code"),
    [
        (ems_plan(amplitude_ma=30.5), ViolationCode.AMPLITUDE_NOT_ON_STEP),
        (ems_plan(amplitude_ma=131), ViolationCode.AMPLITUDE_ABOVE_MAX),
        (ems_plan(channels=(9,)), ViolationCode.CHANNEL_UNAVAILABLE),
        (ems_plan(pulse_width_us=510), ViolationCode.PULSE_WIDTH_ABOVE_MAX),
        (ems_plan(frequency_hz=100), ViolationCode.FREQUENCY_ABOVE_MAX),
        (DENSE, ViolationCode.CURRENT_DENSITY_ABOVE_MAX),
        (DENSE, ViolationCode.POWER_DENSITY_ABOVE_MAX),
    ],
    ids=[
        "half a mA",
        "131 mA",
        "channel 9",
        "510 us",
        "100 Hz",
        "IFU current density",
        "IFU power density",
    ],
)
def test_what_the_device_cannot_do_is_refused_before_the_wire(
    open_rehastim: Opener, plan: StimulationPlan, code: ViolationCode
) -> None:
    driver = open_rehastim()
    verdict = ENGINE.approve(plan, capabilities=driver.capabilities)
    assert verdict.approved_plan is None
    assert code in {v.code for v in verdict.violations if v.layer is Layer.DEVICE}


# ------------------------------------------------------------------------------ commands


def test_approved_plan_reaches_the_wire_exactly(running: RehaStim2Driver) -> None:
    (channel_list,) = sent(running, wire.Command.INIT_CHANNEL_LIST_MODE)
    assert channel_list == wire.InitChannelListMode(
        active_channels=frozenset({1, 2}),
        main_stimulation_interval_coded=48,  # 25 ms = 40 Hz
        inter_pulse_interval_coded=13,
    )
    (start,) = sent(running, wire.Command.START_CHANNEL_LIST_MODE)
    assert start.channels == (wire.ChannelPulse(wire.PulseGroup.SINGLE, 300, 30),) * 2
    emulator = emulator_of(running)
    assert (emulator.output_current_ma(1), emulator.output_current_ma(2)) == (30, 30)
    assert emulator.stimulation_mode is wire.StimulationMode.STARTED
    assert running.state is DriverState.RUNNING


def test_a_lower_frequency_channel_uses_the_low_frequency_factor(open_rehastim: Opener) -> None:
    driver = open_rehastim()
    plan = ems_plan(channels=(1,)).model_copy(
        update={
            "channels": [
                *ems_plan(channels=(1,)).channels,
                *ems_plan(channels=(6,), frequency_hz=10).channels,
            ]
        }
    )
    driver.apply(approve(driver, plan))
    (channel_list,) = sent(driver, wire.Command.INIT_CHANNEL_LIST_MODE)
    assert channel_list.main_stimulation_interval_ms == 25.0
    assert channel_list.low_frequency_channels == frozenset({6})
    assert channel_list.low_frequency_factor == 3  # 40 Hz / (3 + 1) = 10 Hz


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        (ems_plan(frequency_hz=35), "grid"),
        (ems_plan(polarity="negative"), "negative first phase"),
    ],
    ids=["35 Hz", "negative polarity"],
)
def test_a_plan_the_wire_cannot_carry_is_refused_before_anything_is_sent(
    open_rehastim: Opener, plan: StimulationPlan, reason: str
) -> None:
    driver = open_rehastim()
    approved = approve(driver, plan)
    logged = len(emulator_of(driver).command_log)
    with pytest.raises(UnencodablePlanError, match=reason):
        driver.apply(approved)
    log = emulator_of(driver).command_log[logged:]
    assert all(e.command is not wire.Command.INIT_CHANNEL_LIST_MODE for e in log)
    assert driver.state == DriverState.READY, "a plan problem is not a device fault"
    driver.apply(approve(driver, ems_plan()))
    assert driver.state is DriverState.CONFIGURED


def test_live_intensity_change_is_re_approved_and_sent(running: RehaStim2Driver) -> None:
    approved = approve(running, ems_plan())
    change = ENGINE.approve_change(approved, channel=2, amplitude_ua=35_000)
    assert change.approved_plan is not None
    running.set_amplitude(change.approved_plan, channel=2)
    update = sent(running, wire.Command.START_CHANNEL_LIST_MODE)[-1]
    assert [c.current_ma for c in update.channels] == [30, 35]
    assert emulator_of(running).output_current_ma(2) == 35


def test_pause_stops_the_list_and_resume_restarts_it_with_changes_made_meanwhile(
    running: RehaStim2Driver,
) -> None:
    emulator = emulator_of(running)
    running.pause()
    assert not emulator.output_active
    assert emulator.stimulation_mode is wire.StimulationMode.START
    logged = len(emulator.command_log)
    change = ENGINE.approve_change(approve(running, ems_plan()), channel=1, amplitude_ua=25_000)
    assert change.approved_plan is not None
    running.set_amplitude(change.approved_plan, channel=1)
    assert all(
        e.command in (wire.Command.WATCHDOG, wire.Command.GET_STIMULATION_MODE)
        for e in emulator.command_log[logged:]
    ), "nothing is sent to a paused device"
    running.resume()
    assert emulator.output_active
    assert (emulator.output_current_ma(1), emulator.output_current_ma(2)) == (25, 30)
    running.stop()
    assert not emulator.output_active
    assert running.state is DriverState.STOPPED
    with pytest.raises(InvalidStateError):
        running.pause()


def test_applying_again_clears_the_initialised_list_first(open_rehastim: Opener) -> None:
    driver = open_rehastim()
    driver.apply(approve(driver, ems_plan()))
    driver.apply(approve(driver, ems_plan(channels=(4,), frequency_hz=20)))
    commands = [
        e.command for e in emulator_of(driver).command_log if e.command is not wire.Command.WATCHDOG
    ]
    assert commands[-3:] == [
        wire.Command.INIT_CHANNEL_LIST_MODE,
        wire.Command.STOP_CHANNEL_LIST_MODE,
        wire.Command.INIT_CHANNEL_LIST_MODE,
    ]
    assert emulator_of(driver).channel_list == wire.InitChannelListMode(frozenset({4}), 98, 13)


def test_emergency_stop_is_the_pre_encoded_stop(running: RehaStim2Driver) -> None:
    running.emergency_stop()
    emulator = emulator_of(running)
    assert not emulator.output_active
    last = emulator.command_log[-1]
    assert last.command is wire.Command.STOP_CHANNEL_LIST_MODE
    assert last.packet_number == EMERGENCY_STOP_PACKET_NUMBER
    assert running.state is DriverState.STOPPED
    running.apply(approve(running, ems_plan()))
    running.start()
    assert emulator.output_active


def test_the_devices_acknowledgement_confirms_the_emergency_stop(running: RehaStim2Driver) -> None:
    running.emergency_stop()
    # Past the reply timeout and the heartbeat's next check, the stop counts as confirmed: the
    # acknowledgement matched the stop's own packet number and answer, so nothing faulted.
    time.sleep(running.reply_timeout_s + 2 * running.heartbeat_interval_s)
    assert running.state is DriverState.STOPPED
    assert running.fault_reason is None
    assert running.counters.unmatched_replies == 0
    assert running.counters.reply_timeouts == 0


def test_close_while_running_stops_output_and_is_idempotent(running: RehaStim2Driver) -> None:
    emulator = emulator_of(running)
    running.close()
    running.close()
    assert not emulator.output_active
    assert running.state is DriverState.CLOSED


def test_the_heartbeat_keeps_the_device_connected_well_inside_1200_ms(
    running: RehaStim2Driver,
) -> None:
    time.sleep(1.6)
    emulator = emulator_of(running)
    assert emulator.output_active
    assert emulator.connected
    times = [e.timestamp_s for e in emulator.command_log]
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.6
    kinds = {e.command for e in emulator.command_log[-8:]}
    assert {wire.Command.WATCHDOG, wire.Command.GET_STIMULATION_MODE} <= kinds


# ------------------------------------------------------------------------------ faults


def _assert_failed_safe(driver: RehaStim2Driver, reason: str) -> None:
    """Output is off, the reason is reported, and nothing more goes out as if all were well."""
    assert wait_until(lambda: driver.state is DriverState.FAULTED), driver.state
    assert re.search(reason, driver.fault_reason or ""), driver.fault_reason
    emulator = emulator_of(driver)
    assert wait_until(lambda: not emulator.output_active)
    time.sleep(0.05)  # the best-effort stop written on the fault
    logged = len(emulator.command_log)
    with pytest.raises(DeviceFaultError, match=reason):
        driver.pause()
    time.sleep(0.6)  # more than two heartbeat intervals: a live heartbeat would have sent one
    assert len(emulator.command_log) == logged


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"drop_rate": 1.0}, "no acknowledgement"),
        ({"latency_ms": 900.0}, "no acknowledgement"),
        ({"busy_next": 1}, "busy"),
        ({"emergency_switch": True}, "emergency switch"),
        ({"electrode_error": frozenset({2})}, "electrode error"),
        ({"module_error": True}, "stimulation module error"),
        ({"corrupt_rate": 1.0}, "garbage on the link|no acknowledgement"),
    ],
    ids=[
        "dropped acks",
        "latency",
        "busy",
        "emergency switch",
        "electrode error",
        "module error",
        "corrupted packets",
    ],
)
def test_each_injected_fault_ends_with_output_stopped(
    running: RehaStim2Driver, fault: dict[str, Any], reason: str
) -> None:
    reports: list[DeviceFaultReport] = []
    running.add_listener(lambda e: reports.append(e) if isinstance(e, DeviceFaultReport) else None)
    for name, value in fault.items():
        setattr(emulator_of(running).faults, name, value)
    _assert_failed_safe(running, reason)
    assert reports, "listeners were not told of the fault"


def test_a_stimulation_error_is_reported_with_its_code(running: RehaStim2Driver) -> None:
    reports: list[DeviceFaultReport] = []
    running.add_listener(lambda e: reports.append(e) if isinstance(e, DeviceFaultReport) else None)
    emulator_of(running).faults.electrode_error = frozenset({1})
    assert wait_until(lambda: any(r.code == "electrode_error" for r in reports))
    _assert_failed_safe(running, "electrode error")


def test_a_lost_stimulation_error_is_caught_by_the_mode_check(running: RehaStim2Driver) -> None:
    emulator = emulator_of(running)
    emulator.faults.drop_rate = 1.0
    emulator.faults.emergency_switch = True
    assert wait_until(lambda: not emulator.output_active)
    emulator.faults.emergency_switch = False
    emulator.faults.drop_rate = 0.0
    _assert_failed_safe(running, "start mode while the driver is running")


def test_the_device_dropping_the_connection_is_a_fault(open_rehastim: Opener) -> None:
    driver = open_rehastim("watchdog_ms=100")
    driver.apply(approve(driver, ems_plan()))
    driver.start()
    _assert_failed_safe(driver, "sent Init again")


def test_unplug_mid_session_is_a_fault_with_output_stopped(open_rehastim: Opener) -> None:
    driver = open_rehastim("unplug_after_s=0.4")
    driver.apply(approve(driver, ems_plan()))
    driver.start()
    assert wait_until(lambda: driver.state is DriverState.FAULTED)
    assert re.search("link lost|heartbeat", driver.fault_reason or ""), driver.fault_reason
    assert not emulator_of(driver).output_active
    with pytest.raises(DeviceFaultError):
        driver.stop()


def test_ramps_and_duty_cycles_are_left_to_the_session_runner(open_rehastim: Opener) -> None:
    driver = open_rehastim()
    driver.apply(approve(driver, ems_plan(ramp_up_s=2.0, on_time_s=5.0, off_time_s=5.0)))
    assert driver.state is DriverState.CONFIGURED
