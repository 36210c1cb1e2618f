"""The simulated driver on the HAL base class, over a real pyserial path to the firmware emulator.

Every check of what reached the device reads the emulator's log of decoded commands; every fault is
produced by the emulator's own fault injection, not by a mock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionlog.hal import (
    DeviceFaultError,
    DeviceFaultReport,
    Driver,
    DriverState,
    InvalidStateError,
    PlanNotApprovedError,
    PlanNotEncodableError,
    TelemetryReading,
    open_device,
)
from sessionlog.safety.limits import LimitsEngine
from sessionlog.safety.plan import StimulationPlan
from sessionlog.safety.verdict import ApprovedPlan
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from tests.waiting import wait_until

ENGINE = LimitsEngine()


def emulator_of(driver: Driver) -> StimulatorEmulator:
    emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
    return emulator


def sent(driver: Driver, command: wire.Command) -> list[Any]:
    return [entry.message for entry in emulator_of(driver).command_log if entry.command is command]


def ems_plan(amplitude_ma: float = 30, channels: int = 1, **channel: Any) -> StimulationPlan:
    return StimulationPlan.model_validate(
        {
            "modality": "ems",
            "duration_s": 600,
            "electrode": {"body_site": "thigh_anterior", "area_cm2": 50},
            "channels": [
                {
                    "channel": number,
                    "amplitude_ma": amplitude_ma,
                    "pulse_width_us": 300,
                    "frequency_hz": 35,
                    **channel,
                }
                for number in range(1, channels + 1)
            ],
        }
    )


def approve(driver: Driver, plan: StimulationPlan) -> ApprovedPlan:
    verdict = ENGINE.approve(plan, capabilities=driver.capabilities)
    assert verdict.approved_plan is not None, verdict.reasons
    return verdict.approved_plan


@pytest.fixture
def open_sim() -> Iterator[Callable[..., Driver]]:
    opened: list[Driver] = []

    def _open(query: str = "channels=2&seed=7") -> Driver:
        driver = open_device(f"sim://?{query}", driver="simulated")
        opened.append(driver)
        return driver

    yield _open
    for driver in opened:
        driver.close()


@pytest.fixture
def running(open_sim: Callable[..., Driver]) -> Driver:
    driver = open_sim()
    driver.apply(approve(driver, ems_plan(channels=2)))
    driver.start()
    assert wait_until(lambda: emulator_of(driver).output_active)
    return driver


def test_identity_and_capabilities_come_from_the_device(open_sim: Callable[..., Driver]) -> None:
    driver = open_sim("channels=3&ems_max_ua=80000&serial_number=SN-42")
    assert driver.identity.serial_number == "SN-42"
    assert driver.capabilities.channel_count == 3
    ems = driver.capabilities.modalities["ems"]  # type: ignore[index]
    assert ems.amplitude_max_ua == 80_000


def test_approved_plan_reaches_the_wire_exactly(running: Driver) -> None:
    configured = sent(running, wire.Command.CONFIGURE_CHANNEL)
    assert [
        (c.channel, c.amplitude_ua, c.pulse_width_us, c.frequency_millihz) for c in configured
    ] == [
        (0, 30_000, 300, 35_000),
        (1, 30_000, 300, 35_000),
    ]
    assert emulator_of(running).output_amplitude_ua(0) == 30_000
    assert running.state is DriverState.RUNNING


def test_an_unapproved_plan_never_reaches_the_wire(open_sim: Callable[..., Driver]) -> None:
    driver = open_sim()
    with pytest.raises(PlanNotApprovedError, match="approved by the limits engine"):
        driver.apply(ems_plan())  # type: ignore[arg-type]
    without_device_layer = ENGINE.approve(ems_plan()).approved_plan
    assert without_device_layer is not None
    with pytest.raises(PlanNotApprovedError, match="capabilities"):
        driver.apply(without_device_layer)
    assert sent(driver, wire.Command.CONFIGURE_CHANNEL) == []


def test_out_of_capability_values_are_refused_by_the_device_layer_before_the_wire(
    open_sim: Callable[..., Driver],
) -> None:
    driver = open_sim("channels=2&ems_max_ua=50000")
    verdict = ENGINE.approve(ems_plan(amplitude_ma=60), capabilities=driver.capabilities)
    assert verdict.approved_plan is None
    assert any(
        v.layer == "device" and v.field == "channels[0].amplitude_ua" for v in verdict.violations
    )
    verdict = ENGINE.approve(ems_plan(channels=3), capabilities=driver.capabilities)
    assert verdict.approved_plan is None
    assert sent(driver, wire.Command.CONFIGURE_CHANNEL) == []


def test_live_intensity_change_is_re_approved_and_sent(running: Driver) -> None:
    approved = approve(running, ems_plan(channels=2))
    change = ENGINE.approve_change(approved, channel=2, amplitude_ua=35_000)
    assert change.approved_plan is not None
    running.set_amplitude(change.approved_plan, channel=2)
    assert [(m.channel, m.amplitude_ua) for m in sent(running, wire.Command.SET_AMPLITUDE)] == [
        (1, 35_000)
    ]
    assert wait_until(lambda: emulator_of(running).output_amplitude_ua(1) == 35_000)


def _with(
    plan: StimulationPlan, channel_index: int | None = None, **fields: Any
) -> StimulationPlan:
    """``plan`` with plan-level ``fields`` changed, or those of one channel if it is given."""
    data = plan.model_dump()
    target = data if channel_index is None else data["channels"][channel_index]
    for name, value in fields.items():
        if isinstance(value, dict):
            target[name] = {**target[name], **value}
        else:
            target[name] = value
    return StimulationPlan.model_validate(data)


@pytest.mark.parametrize(
    ("channel_index", "fields"),
    [
        (None, {"duration_s": 900}),
        (None, {"electrode": {"area_cm2": 40.0}}),
        (None, {"program_name": "other"}),
        (0, {"pulse_width_us": 200}),
        (0, {"frequency_hz": 30.0}),
        (0, {"amplitude_ua": 31_000, "ramp_up_s": 1.0}),
        (1, {"amplitude_ua": 31_000}),
    ],
    ids=[
        "duration",
        "electrode area",
        "program name",
        "pulse width of the channel",
        "frequency of the channel",
        "ramp of the channel",
        "amplitude of another channel",
    ],
)
def test_a_change_that_alters_more_than_the_amplitude_is_refused(
    running: Driver, channel_index: int | None, fields: dict[str, Any]
) -> None:
    other = approve(running, _with(ems_plan(channels=2), channel_index, **fields))
    with pytest.raises(PlanNotApprovedError, match="more than channel 1"):
        running.set_amplitude(other, channel=1)
    assert sent(running, wire.Command.SET_AMPLITUDE) == []


def test_a_change_of_the_amplitude_alone_approved_afresh_is_accepted(running: Driver) -> None:
    fresh = approve(running, _with(ems_plan(channels=2), 0, amplitude_ua=31_000))
    running.set_amplitude(fresh, channel=1)
    assert [(m.channel, m.amplitude_ua) for m in sent(running, wire.Command.SET_AMPLITUDE)] == [
        (0, 31_000)
    ]


def test_pause_resume_stop(running: Driver) -> None:
    running.pause()
    assert wait_until(lambda: not emulator_of(running).output_active)
    running.resume()
    assert wait_until(lambda: emulator_of(running).output_active)
    running.stop()
    assert not emulator_of(running).output_active
    assert running.state is DriverState.STOPPED
    with pytest.raises(InvalidStateError):
        running.pause()


def test_telemetry_reaches_listeners(running: Driver) -> None:
    readings: list[TelemetryReading] = []
    running.add_listener(lambda e: readings.append(e) if isinstance(e, TelemetryReading) else None)
    assert wait_until(lambda: len(readings) >= 4)
    assert {r.channel for r in readings} == {1, 2}
    assert all(25_000 < r.current_ua < 35_000 for r in readings)


def test_emergency_stop_stops_output_on_the_device(running: Driver) -> None:
    running.emergency_stop()
    assert wait_until(lambda: not emulator_of(running).output_active)
    assert sent(running, wire.Command.EMERGENCY_STOP)
    assert running.state is DriverState.STOPPED


def test_close_while_running_stops_output_and_is_idempotent(running: Driver) -> None:
    emulator = emulator_of(running)
    running.close()
    running.close()
    assert not emulator.output_active
    assert running.state is DriverState.CLOSED


def _assert_failed_safe(driver: Driver, reason: str) -> None:
    """Output is off, the reason is reported, and no later command goes out as if all were well."""
    assert wait_until(lambda: driver.state is DriverState.FAULTED), driver.state
    assert re.search(reason, driver.fault_reason or ""), driver.fault_reason
    emulator = emulator_of(driver)
    assert wait_until(lambda: not emulator.output_active)
    logged = len(emulator.command_log)
    with pytest.raises(DeviceFaultError, match=reason):
        driver.pause()
    time.sleep(0.3)  # two heartbeat intervals: a live heartbeat thread would have sent one
    assert len(emulator.command_log) == logged


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"drop_rate": 1.0}, "no acknowledgement"),
        ({"latency_ms": 900.0}, "no acknowledgement"),
        ({"nak_next": 1, "nak_code": wire.ErrorCode.BUSY}, "busy"),
        ({"device_error": True}, "hardware fault"),
    ],
    ids=["dropped replies", "latency", "nak", "device error"],
)
def test_each_injected_fault_ends_with_output_stopped(
    running: Driver, fault: dict[str, Any], reason: str
) -> None:
    faults: list[DeviceFaultReport] = []
    running.add_listener(lambda e: faults.append(e) if isinstance(e, DeviceFaultReport) else None)
    for name, value in fault.items():
        setattr(emulator_of(running).faults, name, value)
    _assert_failed_safe(running, reason)
    assert faults, "listeners were not told of the fault"


def test_garbage_on_the_link_is_a_fault(running: Driver) -> None:
    emulator_of(running).faults.corrupt_rate = 1.0
    _assert_failed_safe(running, "garbage on the link|no acknowledgement")


def test_unplug_mid_session_is_a_fault_with_output_stopped(open_sim: Callable[..., Driver]) -> None:
    driver = open_sim("channels=1&unplug_after_s=0.6")
    driver.apply(approve(driver, ems_plan()))
    driver.start()
    assert wait_until(lambda: driver.state is DriverState.FAULTED)
    assert "link lost" in (driver.fault_reason or "") or "heartbeat" in (driver.fault_reason or "")
    assert not emulator_of(driver).output_active
    with pytest.raises(DeviceFaultError):
        driver.stop()


def test_electrode_off_is_reported_without_a_host_fault(running: Driver) -> None:
    reports: list[DeviceFaultReport] = []
    running.add_listener(lambda e: reports.append(e) if isinstance(e, DeviceFaultReport) else None)
    emulator_of(running).set_electrode_off(0)
    assert wait_until(lambda: bool(reports))
    assert reports[0].code == "electrode_off"
    assert not reports[0].stops_output
    assert running.state is DriverState.RUNNING
    assert emulator_of(running).output_amplitude_ua(0) == 0


def test_a_lost_reply_to_an_idempotent_command_is_retried_not_fatal(running: Driver) -> None:
    emulator = emulator_of(running)
    emulator.faults.drop_rate = 1.0
    assert wait_until(lambda: running.counters.reply_timeouts >= 1)
    emulator.faults.drop_rate = 0.0
    time.sleep(0.6)
    assert running.state is DriverState.RUNNING
    assert running.counters.retried_requests >= 1
    assert emulator.output_active


def test_a_frequency_finer_than_the_wire_carries_is_refused_without_a_fault(
    open_sim: Callable[..., Driver],
) -> None:
    driver = open_sim()
    approved = approve(driver, ems_plan(frequency_hz=35.0004))
    with pytest.raises(PlanNotEncodableError, match="not a whole number of mHz"):
        driver.apply(approved)
    assert sent(driver, wire.Command.CONFIGURE_CHANNEL) == []
    assert driver.state is DriverState.READY
    driver.apply(approve(driver, ems_plan()))
    assert driver.state is DriverState.CONFIGURED


@pytest.mark.parametrize("polarity", ["positive", "negative"])
def test_monophasic_pulses_of_alternating_polarity_are_refused_not_made_one_way(
    open_sim: Callable[..., Driver], polarity: str
) -> None:
    driver = open_sim()
    alternating = approve(
        driver, ems_plan(amplitude_ma=10, phase_type="monophasic", polarity="alternating")
    )
    with pytest.raises(PlanNotEncodableError, match="cannot alternate the polarity"):
        driver.apply(alternating)
    assert sent(driver, wire.Command.CONFIGURE_CHANNEL) == []

    driver.apply(
        approve(driver, ems_plan(amplitude_ma=10, phase_type="monophasic", polarity=polarity))
    )
    [configured] = sent(driver, wire.Command.CONFIGURE_CHANNEL)
    assert configured.phase_type is wire.PhaseType.MONOPHASIC
    expected = (
        wire.Polarity.POSITIVE_FIRST if polarity == "positive" else wire.Polarity.NEGATIVE_FIRST
    )
    assert configured.polarity is expected


def one_channel_running(
    open_sim: Callable[..., Driver], query: str
) -> tuple[Driver, StimulatorEmulator]:
    """A one-channel EMS plan started on ``sim://?{query}``, and the emulator behind it."""
    driver = open_sim(query)
    driver.apply(approve(driver, ems_plan()))
    driver.start()
    return driver, emulator_of(driver)


def test_the_heartbeat_follows_a_short_watchdog_the_device_reports(
    open_sim: Callable[..., Driver],
) -> None:
    # A 150 ms watchdog: the default 200 ms heartbeat would let it expire and stop the output.
    driver, emulator = one_channel_running(open_sim, "channels=1&seed=3&watchdog_ms=150")

    time.sleep(1.0)  # over six watchdog periods

    assert driver.state is DriverState.RUNNING, driver.fault_reason
    assert emulator.output_active
    beats = [e for e in emulator.command_log if e.command is wire.Command.HEARTBEAT]
    assert len(beats) >= 10


def test_a_lost_heartbeat_reply_is_retried_within_a_short_watchdog(
    open_sim: Callable[..., Driver],
) -> None:
    # A 300 ms watchdog and a 100 ms heartbeat: were the lost acknowledgement awaited for the
    # full reply timeout (500 ms), the host would fall silent past the watchdog's time.
    driver, emulator = one_channel_running(open_sim, "channels=1&seed=3&watchdog_ms=300")

    emulator.faults.drop_rate = 1.0  # every frame from the device is lost for 150 ms
    time.sleep(0.15)
    emulator.faults.drop_rate = 0.0
    time.sleep(0.6)  # two watchdog periods more

    assert driver.counters.retried_requests >= 1
    assert emulator.fault_log == ()
    assert driver.state is DriverState.RUNNING, driver.fault_reason
    assert emulator.output_active


def test_a_slow_link_to_a_short_watchdog_device_is_no_lost_heartbeat(
    open_sim: Callable[..., Driver],
) -> None:
    # Each reply takes 150 ms, longer than the 100 ms heartbeat: the heartbeat waits for twice
    # the slowest reply it has seen rather than faulting on replies that are only slow.
    driver, emulator = one_channel_running(
        open_sim, "channels=1&seed=3&watchdog_ms=300&latency_ms=150"
    )

    time.sleep(1.5)

    assert driver.state is DriverState.RUNNING, driver.fault_reason
    assert emulator.fault_log == ()
    assert emulator.output_active


def test_one_slow_reply_does_not_stretch_the_heartbeat_past_the_watchdog(
    open_sim: Callable[..., Driver],
) -> None:
    # A status read answered after 200 ms raises the slowest reply seen; the heartbeat's wait
    # grows with it, but never so far that a lost reply is retried after the 300 ms watchdog.
    driver, emulator = one_channel_running(open_sim, "channels=1&seed=3&watchdog_ms=300")
    emulator.faults.latency_ms = 200
    driver.read_status()
    emulator.faults.latency_ms = 0

    emulator.faults.drop_rate = 1.0  # a heartbeat reply is lost soon after
    time.sleep(0.15)
    emulator.faults.drop_rate = 0.0
    time.sleep(0.8)

    assert emulator.fault_log == ()
    assert driver.state is DriverState.RUNNING, driver.fault_reason
