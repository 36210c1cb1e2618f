"""The driver contract: one suite of checks that every driver, built in or third-party, must pass.

A driver package subclasses ``DriverContract`` in a test module (``driver_name = "acme"``), and the
checks run against its emulator by default; the pytest plugin's ``--sessionlog-url`` and
``--sessionlog-hardware`` point the same checks at a real device. Every check goes through the public
path an application takes (the ``sessionlog.drivers`` entry point, ``open_device``, the limits
engine, the driver's public methods). What reached the wire and whether the output stage is on are
read from the emulator probe when there is one; the checks that need it, or that inject faults, are
skipped with the reason otherwise, and the rest run against anything.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import pytest

from sessionlog.conformance.plans import (
    ENGINE,
    approve_for,
    find_reference_plan,
    other_amplitudes,
    plan_for,
)
from sessionlog.conformance.probe import (
    EmulatorProbe,
    PulseProbe,
    TelemetryProbe,
    probe_of_driver,
)
from sessionlog.hal.driver import DeviceFaultReport, Driver, DriverState, TelemetryReading
from sessionlog.hal.errors import (
    DeviceFaultError,
    InvalidStateError,
    PlanNotApprovedError,
)
from sessionlog.hal.registry import load_driver, open_device
from sessionlog.safety.amplitude_range import highest_passing
from sessionlog.safety.capabilities import DeviceCapabilities, ModalityCapabilities
from sessionlog.safety.plan import StimulationPlan
from sessionlog.safety.verdict import ApprovedPlan

DRIVER_OPTION = "sessionlog_driver"
URL_OPTION = "sessionlog_url"
HARDWARE_OPTION = "sessionlog_hardware"

UNPLUGGED_REASON = r"(read from|write to) \S+ failed|\S+ is closed"
"""What the transport says when the port vanished (not a reply timeout, not a refusal)."""

HARDWARE_SKIP = "emulator-only check, skipped on hardware (--sessionlog-hardware)"
NO_PROBE_SKIP = (
    "the port has no emulator probe (.emulator satisfying sessionlog.conformance.probe."
    "EmulatorProbe), so what reached the wire cannot be observed"
)
OUTPUT_SKIP = (
    "drives the output, and the port has no emulator probe: it may be a real device. Pass "
    "--sessionlog-hardware to run it on hardware (into a test load, never a person)"
)


@dataclass(frozen=True)
class ConformanceTarget:
    """Which driver the contract runs against, where, and whether that is real hardware."""

    driver_name: str
    url: str
    hardware: bool


def resolve_target(contract: type[DriverContract], config: pytest.Config) -> ConformanceTarget:
    """The driver and URL for ``contract``: the command-line options apply to the contract of the
    driver that ``--sessionlog-driver`` names, so a hardware URL never reaches another driver's
    contract in the same run. Otherwise the class's ``url``, else the driver's ``emulator_url``."""
    selected = config.getoption(DRIVER_OPTION, default=None)
    name = contract.driver_name or selected
    if not name:
        raise pytest.UsageError(
            f"{contract.__name__} names no driver: set driver_name, or pass --sessionlog-driver"
        )
    driver_class = load_driver(name)
    chosen = name == selected
    url = (config.getoption(URL_OPTION, default=None) if chosen else None) or contract.url
    url = url or getattr(driver_class, "emulator_url", None)
    if not url:
        raise pytest.UsageError(
            f"no URL to run the {name!r} driver's contract against: the driver declares no "
            "emulator_url; set url on the contract class or pass --sessionlog-url"
        )
    hardware = chosen and bool(config.getoption(HARDWARE_OPTION, default=False))
    return ConformanceTarget(driver_name=name, url=str(url), hardware=hardware)


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def commands_since(probe: EmulatorProbe, mark: int) -> list[str]:
    """Names of the commands (not keep-alive traffic) the device decoded after ``mark`` entries."""
    return [entry.name for entry in probe.wire_log()[mark:] if not entry.keepalive]


def state_of(driver: Driver) -> DriverState:
    """The driver's state now (a call, so a type checker does not carry an earlier read over)."""
    return driver.state


def silence_host(driver: Driver) -> None:
    """Stop the driver's reader and heartbeat without a word on the wire, as a killed host would
    (kill -9 leaves no chance to send a stop). Only the device's own watchdog can stop it then."""
    driver._shutdown.set()
    for thread in (driver._heartbeat, driver._reader):
        if thread is not None:
            thread.join(timeout=2)


class DriverContract:
    """The contract. Subclass it in a module named ``test_*.py`` as ``Test<Something>``.

    Class attributes say what to run against; ``reference_plan`` may be overridden when none of the
    ordinary plans in ``sessionlog.conformance.plans`` suits the device.
    """

    driver_name: ClassVar[str | None] = None
    """The entry-point name of the driver; None takes it from ``--sessionlog-driver``."""
    url: ClassVar[str | None] = None
    """The emulator URL; None uses the driver's ``emulator_url``."""
    device_watchdog_s: ClassVar[float] = 1.2
    """How long the device keeps output on without hearing from the host (ScienceMode2: 1.2 s).
    The heartbeat check runs past it; the silent-host check expects output off soon after it."""

    # ------------------------------------------------------------------ fixtures

    @pytest.fixture
    def target(self, request: pytest.FixtureRequest) -> ConformanceTarget:
        return resolve_target(type(self), request.config)

    @pytest.fixture
    def device(self, target: ConformanceTarget) -> Iterator[Driver]:
        """A connected driver, opened through the registry as an application would; closed after."""
        driver = open_device(target.url, driver=target.driver_name)
        try:
            yield driver
        finally:
            driver.close()

    @pytest.fixture
    def seen(self, target: ConformanceTarget, device: Driver) -> EmulatorProbe | None:
        """The emulator probe when the wire can be observed; None on hardware or without one."""
        return None if target.hardware else probe_of_driver(device)

    @pytest.fixture
    def probe(self, target: ConformanceTarget, seen: EmulatorProbe | None) -> EmulatorProbe:
        """The emulator probe, for checks that cannot run without one (they are skipped)."""
        if target.hardware:
            pytest.skip(HARDWARE_SKIP)
        if seen is None:
            pytest.skip(NO_PROBE_SKIP)
        return seen

    @pytest.fixture
    def reference(self, target: ConformanceTarget, device: Driver) -> ApprovedPlan:
        """The reference plan, approved against this device (the gentlest one on hardware)."""
        plan = self.reference_plan(device, gentle=target.hardware)
        if plan is None:
            pytest.fail(
                "no ordinary plan is approved against this device's capabilities and encodable "
                "by the driver; override DriverContract.reference_plan",
                pytrace=False,
            )
        approved = approve_for(device, plan)
        assert approved is not None, "the reference plan is not approved against this device"
        return approved

    @pytest.fixture
    def running(
        self,
        target: ConformanceTarget,
        device: Driver,
        reference: ApprovedPlan,
        seen: EmulatorProbe | None,
    ) -> Driver:
        """The device delivering the reference plan. Switching a device's output on needs an
        emulator or the explicit ``--sessionlog-hardware``: a port without a probe may be a real
        stimulator with a person attached."""
        if seen is None and not target.hardware:
            pytest.skip(OUTPUT_SKIP)
        device.apply(reference)
        device.start()
        return device

    def reference_plan(self, device: Driver, *, gentle: bool) -> StimulationPlan | None:
        """The plan the checks run; ``gentle`` (hardware) asks for the smallest currents."""
        return find_reference_plan(device, gentle=gentle)

    # ------------------------------------------------------------------ identity

    def test_the_driver_is_registered_under_its_name(self, target: ConformanceTarget) -> None:
        driver_class = load_driver(target.driver_name)
        assert issubclass(driver_class, Driver)
        assert driver_class.name == target.driver_name, (
            f"{driver_class.__name__}.name is {driver_class.name!r}, but its entry point is "
            f"{target.driver_name!r}"
        )

    def test_connect_identifies_the_device_and_reports_its_capabilities(
        self, target: ConformanceTarget, device: Driver
    ) -> None:
        assert state_of(device) is DriverState.READY
        assert not device.output_active
        identity = device.identity
        assert identity.driver == target.driver_name
        for field in ("model", "serial_number", "firmware_version"):
            value = getattr(identity, field)
            assert isinstance(value, str), f"identity.{field} is {value!r}"
            assert value.strip(), f"identity.{field} is empty"
        capabilities = device.capabilities
        assert isinstance(capabilities, DeviceCapabilities)
        assert capabilities.model_name.strip()
        assert capabilities.channel_count >= 1
        assert capabilities.modalities, "the device supports no modality"
        assert device.capabilities == capabilities, "capabilities change between reads"

    # ------------------------------------------------------------------ plans and refusals

    def test_an_approved_plan_is_applied_with_output_off(
        self, device: Driver, reference: ApprovedPlan, seen: EmulatorProbe | None
    ) -> None:
        mark = len(seen.wire_log()) if seen else 0
        device.apply(reference)
        assert state_of(device) is DriverState.CONFIGURED
        assert not device.output_active
        if seen is not None:
            assert commands_since(seen, mark), "applying a plan sent no command to the device"
            time.sleep(0.05)
            assert not seen.output_active, "applying a plan switched the output on"

    def test_a_plan_not_approved_against_this_device_never_reaches_the_wire(
        self, device: Driver, reference: ApprovedPlan, seen: EmulatorProbe | None
    ) -> None:
        mark = len(seen.wire_log()) if seen else 0
        with pytest.raises(PlanNotApprovedError):
            device.apply(reference.plan)  # type: ignore[arg-type]
        without_device_layer = ENGINE.approve(reference.plan).approved_plan
        assert without_device_layer is not None
        with pytest.raises(PlanNotApprovedError):
            device.apply(without_device_layer)
        for widened, capabilities in _wider_capabilities(device.capabilities, reference.plan):
            elsewhere = ENGINE.approve(reference.plan, capabilities=capabilities).approved_plan
            assert elsewhere is not None, f"the reference plan is refused with {widened}"
            with pytest.raises(PlanNotApprovedError):
                device.apply(elsewhere)
        assert state_of(device) is DriverState.READY, "a refused plan is not a device fault"
        if seen is not None:
            time.sleep(0.05)
            assert commands_since(seen, mark) == [], "a plan this device did not approve was sent"

    # ------------------------------------------------------------------ output

    def test_start_delivers_exactly_the_approved_plan(
        self, running: Driver, reference: ApprovedPlan, seen: EmulatorProbe | None
    ) -> None:
        assert state_of(running) is DriverState.RUNNING
        assert running.output_active
        if seen is None:
            return
        assert wait_until(lambda: seen.output_active, 1.0), "start left the output off"
        _assert_delivers(seen, reference.plan, running.capabilities)

    def test_the_device_s_measured_current_reaches_the_driver(
        self, running: Driver, reference: ApprovedPlan, probe: EmulatorProbe
    ) -> None:
        """Each reading the device reports reaches ``latest_telemetry()`` on its own channel and
        in µA: the overcurrent check, the session record and the live view see only what the
        driver decodes, so a reading dropped, renumbered or rescaled on its way blinds them."""
        if not isinstance(probe, TelemetryProbe):
            pytest.skip("the emulator probe does not report the device's telemetry")
        planned = {c.channel for c in reference.plan.channels}
        assert wait_until(lambda: planned <= probe.last_telemetry().keys(), 2.0), (
            f"the device reported no measured current for channels {sorted(planned)} within 2 s "
            "of delivering (does the driver ask for it?)"
        )

        def in_driver() -> dict[int, int]:
            return {n: r.current_ua for n, r in running.latest_telemetry().items()}

        # Readings keep coming, so both sides are compared until they agree on the same one.
        agreed = wait_until(lambda: in_driver() == probe.last_telemetry(), 2.0)
        assert agreed, (
            f"the device last reported {probe.last_telemetry()} µA per channel; the driver's "
            f"latest_telemetry() holds {in_driver()}"
        )

    def test_every_other_declared_modality_is_delivered_exactly(
        self,
        target: ConformanceTarget,
        device: Driver,
        reference: ApprovedPlan,
        probe: EmulatorProbe,
    ) -> None:
        """The checks run the preferred modality (EMS when there is one); a mistake that touches
        only another modality (a microcurrent value scaled on its way to the wire, say) shows
        here, in an ordinary plan of each other modality the device declares."""
        others = sorted(set(device.capabilities.modalities) - {reference.plan.modality})
        if not others:
            pytest.skip("the device declares one modality; the other checks run it")
        for modality in others:
            plan = find_reference_plan(device, gentle=target.hardware, modality=modality)
            assert plan is not None, (
                f"no ordinary {modality} plan is approved against this device's capabilities "
                "and encodable by the driver"
            )
            approved = approve_for(device, plan)
            assert approved is not None
            device.apply(approved)
            device.start()
            assert wait_until(lambda: probe.output_active, 1.0), f"start left {modality} off"
            _assert_delivers(probe, plan, device.capabilities, f"in a {modality} plan")
            device.stop()

    def test_the_highest_approved_amplitude_is_delivered_exactly(
        self, device: Driver, reference: ApprovedPlan, probe: EmulatorProbe
    ) -> None:
        """The declared ceiling is one the device really delivers: capabilities do not overstate."""
        plan = reference.plan
        modality = plan.modality
        ranges = device.capabilities.modalities[modality]
        first = plan.channels[0]

        def variant(amplitude_ua: int) -> StimulationPlan | None:
            return plan_for(
                modality,
                [c.channel for c in plan.channels],
                amplitude_ua,
                first.pulse_width_us,
                first.frequency_hz,
                ranges,
            )

        def accepted(amplitude_ua: int) -> bool:
            candidate = variant(amplitude_ua)
            return candidate is not None and approve_for(device, candidate) is not None

        highest = highest_passing(
            first.amplitude_ua, ranges.amplitude_max_ua, ranges.amplitude_step_ua, accepted
        )
        edge = variant(highest)
        assert edge is not None, f"{highest} µA on every channel is not a valid plan"
        approved = approve_for(device, edge)
        assert approved is not None, f"{highest} µA on every channel is no longer approved"
        device.apply(approved)
        device.start()
        assert wait_until(lambda: probe.output_active, 1.0), "start left the output off"
        _assert_delivers(probe, edge, device.capabilities, "at the highest approved amplitude")

    def test_a_re_approved_live_change_is_delivered(
        self, running: Driver, reference: ApprovedPlan, seen: EmulatorProbe | None
    ) -> None:
        """Each channel's change reaches that channel alone: after channel 1's, the other
        channels still deliver their own values; after channel 2's, channel 1 keeps its new one."""
        plan = reference
        for channel in [c.channel for c in reference.plan.channels][:2]:
            plan = _live_change(plan, channel=channel, gentle=seen is None)
            running.set_amplitude(plan, channel=channel)
            assert state_of(running) is DriverState.RUNNING, running.fault_reason
            if seen is not None:
                _await_delivery(seen, plan.plan, running.capabilities)
                assert state_of(running) is DriverState.RUNNING, (
                    f"after changing channel {channel}: {running.fault_reason}"
                )
                _assert_delivers(
                    seen, plan.plan, running.capabilities, f"after changing channel {channel}"
                )

    def test_pause_stops_output_and_resume_restores_the_plan(
        self, running: Driver, reference: ApprovedPlan, seen: EmulatorProbe | None
    ) -> None:
        running.pause()
        assert state_of(running) is DriverState.PAUSED
        if seen is not None:
            assert wait_until(lambda: not seen.output_active, 1.0), "pause left the output on"
        running.resume()
        assert state_of(running) is DriverState.RUNNING
        if seen is not None:
            assert wait_until(lambda: seen.output_active, 1.0), "resume left the output off"
            _assert_delivers(seen, reference.plan, running.capabilities)

    def test_stop_ends_output_and_a_plan_can_be_started_again(
        self, running: Driver, reference: ApprovedPlan, seen: EmulatorProbe | None
    ) -> None:
        running.stop()
        assert state_of(running) is DriverState.STOPPED
        assert not running.output_active
        if seen is not None:
            assert wait_until(lambda: not seen.output_active, 1.0), "stop left the output on"
        with pytest.raises(InvalidStateError):
            running.pause()
        running.apply(reference)
        running.start()
        assert state_of(running) is DriverState.RUNNING
        if seen is not None:
            assert wait_until(lambda: seen.output_active, 1.0), "a second start left output off"
            _assert_delivers(seen, reference.plan, running.capabilities, "after a second start")

    def test_emergency_stop_stops_output_at_once(
        self, running: Driver, seen: EmulatorProbe | None
    ) -> None:
        mark = len(seen.wire_log()) if seen else 0
        running.emergency_stop()
        assert state_of(running) is DriverState.STOPPED
        if seen is not None:
            assert wait_until(lambda: not seen.output_active, 0.5), "output still on after 0.5 s"
            assert commands_since(seen, mark), "no stop command reached the device"

    def test_an_emergency_stop_is_confirmed_by_the_device(self, running: Driver) -> None:
        assert running._emergency_stop_reply_key() is not None, (
            "_emergency_stop_reply_key returns None, so an emergency stop lost on the line goes "
            "unnoticed while the heartbeat keeps the device going: return the key of the "
            "device's acknowledgement of the stop frame"
        )
        running.emergency_stop()
        # Past the reply timeout and the heartbeat's next check: a driver that expects the
        # device to acknowledge the stop has had it acknowledged, so nothing faulted.
        time.sleep(running.reply_timeout_s + 2 * running.heartbeat_interval_s)
        assert state_of(running) is DriverState.STOPPED, running.fault_reason
        assert running.fault_reason is None

    def test_the_status_read_from_the_device_follows_its_output(self, running: Driver) -> None:
        if type(running)._read_status is Driver._read_status:
            pytest.skip("the driver does not read the device's status (an optional method)")
        assert running.read_status().output_active, "the device says no output flows"
        running.stop()
        assert not running.read_status().output_active, "the device says output still flows"

    def test_emergency_stop_is_accepted_before_any_output(self, device: Driver) -> None:
        device.emergency_stop()
        assert state_of(device) is DriverState.STOPPED
        # Past the acknowledgement's deadline and the heartbeat's next look at it.
        time.sleep(device.reply_timeout_s + 2 * device.heartbeat_interval_s)
        assert state_of(device) is DriverState.STOPPED, device.fault_reason
        assert device.fault_reason is None, device.fault_reason

    # ------------------------------------------------------------------ heartbeat

    def test_the_heartbeat_keeps_output_on_past_the_device_watchdog(
        self, running: Driver, reference: ApprovedPlan, seen: EmulatorProbe | None
    ) -> None:
        events: list[TelemetryReading | DeviceFaultReport] = []
        running.add_listener(events.append)
        # Commands are told apart by their place in the log, not by time: the emulator stamps
        # them with its own clock, which need not be the host's.
        logged_before = len(seen.wire_log()) if seen is not None else 0
        time.sleep(self.device_watchdog_s + 0.4)
        assert state_of(running) is DriverState.RUNNING, running.fault_reason
        assert not [e for e in events if isinstance(e, DeviceFaultReport)], events
        planned = {c.channel for c in reference.plan.channels}
        for reading in (e for e in events if isinstance(e, TelemetryReading)):
            assert reading.channel in planned, f"telemetry for unplanned channel {reading}"
            assert reading.current_ua >= 0, reading
            assert reading.impedance_ohm >= 0, reading
        if seen is None:
            return
        assert seen.output_active, "the device stopped its output although the host is alive"
        # The silence before the first of these commands is bounded by the output staying on.
        times = [e.timestamp_s for e in seen.wire_log()[logged_before:]]
        assert len(times) > 1, "nothing reached the device while it was running"
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert max(gaps) < self.device_watchdog_s, f"the host fell silent for {max(gaps):.3f} s"

    def test_a_silent_host_leaves_the_device_to_stop_by_itself(
        self, running: Driver, probe: EmulatorProbe
    ) -> None:
        assert wait_until(lambda: probe.output_active, 1.0), "start left the output off"
        silence_host(running)
        assert probe.output_active, "the output went off before the watchdog could act"
        assert wait_until(lambda: not probe.output_active, self.device_watchdog_s + 0.5), (
            f"the device kept its output on more than {self.device_watchdog_s + 0.5:g} s after "
            "the host fell silent: it has no working watchdog"
        )

    # ------------------------------------------------------------------ faults

    def test_an_error_reply_faults_the_driver_and_stops_output(
        self, running: Driver, reference: ApprovedPlan, probe: EmulatorProbe
    ) -> None:
        change = _live_change(reference, channel=1, gentle=False)
        probe.refuse_next_command()
        with contextlib.suppress(DeviceFaultError):  # the heartbeat may meet the refusal first
            running.set_amplitude(change, channel=1)
        _assert_failed_safe(running, probe, r"refused")

    def test_a_fault_the_device_reports_stops_output(
        self, running: Driver, probe: EmulatorProbe
    ) -> None:
        reports: list[DeviceFaultReport] = []
        running.add_listener(
            lambda e: reports.append(e) if isinstance(e, DeviceFaultReport) else None
        )
        probe.raise_device_error()
        _assert_failed_safe(running, probe, r"device reported")
        assert reports, "listeners were not told of the fault"

    @pytest.mark.parametrize(
        ("fault", "reason"),
        [
            pytest.param("dropped replies", r"no acknowledgement", id="dropped replies"),
            pytest.param("garbage", r"garbage on the link|no acknowledgement", id="garbage"),
            pytest.param("unplugged", UNPLUGGED_REASON, id="unplugged"),
        ],
    )
    def test_a_broken_link_ends_with_output_stopped(
        self, running: Driver, probe: EmulatorProbe, fault: str, reason: str
    ) -> None:
        switch = {
            "dropped replies": probe.drop_replies,
            "garbage": probe.corrupt_replies,
            "unplugged": probe.unplug,
        }[fault]
        assert wait_until(lambda: probe.output_active, 1.0), "start left the output off"
        switch()
        _assert_failed_safe(running, probe, reason)
        if fault == "garbage":
            assert (
                "garbage on the link" in (running.fault_reason or "")
                or running.counters.malformed_frames > 0
            ), (
                f"the driver faulted ({running.fault_reason}) without counting a single malformed "
                "frame: _decode must count damaged frames in counters.malformed_frames"
            )
        running.close()
        assert state_of(running) is DriverState.CLOSED

    # ------------------------------------------------------------------ close

    def test_close_stops_output_releases_the_port_and_is_idempotent(
        self, target: ConformanceTarget
    ) -> None:
        before = set(threading.enumerate())
        with open_device(target.url, driver=target.driver_name) as driver:
            seen = None if target.hardware else probe_of_driver(driver)
            if seen is not None or target.hardware:
                plan = self.reference_plan(driver, gentle=target.hardware)
                approved = approve_for(driver, plan) if plan is not None else None
                assert approved is not None, (
                    "the reference plan is not approved on a new connection"
                )
                driver.apply(approved)
                driver.start()
        assert state_of(driver) is DriverState.CLOSED
        assert driver.transport.closed
        driver.close()
        with pytest.raises(InvalidStateError):
            driver.stop()

        def leftover() -> list[threading.Thread]:
            return [t for t in set(threading.enumerate()) - before if t.is_alive()]

        assert wait_until(lambda: not leftover(), 2.0), f"threads left running: {leftover()}"
        if seen is not None:
            assert not seen.output_active, "close left the output on"
            logged = len(seen.wire_log())
            time.sleep(2 * type(driver).heartbeat_interval_s + 0.05)
            assert len(seen.wire_log()) == logged, "the driver kept writing after close"


# ---------------------------------------------------------------------- helpers of the checks


def _delivered(probe: EmulatorProbe, plan: StimulationPlan, caps: DeviceCapabilities) -> bool:
    try:
        return all(
            probe.delivered_amplitude_ua(c.channel) == c.amplitude_ua for c in plan.channels
        ) and all(probe.delivered_amplitude_ua(n) == 0 for n in _unplanned(plan, caps))
    except Exception:  # a channel the device lacks: _assert_delivers says so
        return False


def _await_delivery(
    probe: EmulatorProbe, plan: StimulationPlan, capabilities: DeviceCapabilities
) -> None:
    """Give the device up to a second to deliver ``plan`` (the caller asserts what it delivers)."""
    wait_until(lambda: _delivered(probe, plan, capabilities), 1.0)


def _unplanned(plan: StimulationPlan, capabilities: DeviceCapabilities) -> list[int]:
    planned = {c.channel for c in plan.channels}
    return [n for n in range(1, capabilities.channel_count + 1) if n not in planned]


def _delivered_on(probe: EmulatorProbe, channel: int, capabilities: DeviceCapabilities) -> int:
    """What ``channel`` delivers; a clear failure when the device has no such channel."""
    try:
        return probe.delivered_amplitude_ua(channel)
    except Exception as error:
        pytest.fail(
            f"the driver declares {capabilities.channel_count} channels, but the device has no "
            f"channel {channel} ({type(error).__name__}: {error}): capabilities overstate the "
            "channel count",
            pytrace=False,
        )


def _assert_delivers(
    probe: EmulatorProbe,
    plan: StimulationPlan,
    capabilities: DeviceCapabilities,
    when: str = "",
) -> None:
    """Each planned channel delivers its own amplitude exactly (a µA/mA mix-up is off by 1000×, a
    channel swap or copy shows as the other channel's value) and no other channel delivers
    anything."""
    delivered = {
        n: _delivered_on(probe, n, capabilities) for n in range(1, capabilities.channel_count + 1)
    }
    expected = {n: 0 for n in delivered} | {c.channel: c.amplitude_ua for c in plan.channels}
    assert delivered == expected, (
        f"delivered µA per channel {delivered}, planned {expected}{' ' + when if when else ''}"
    )
    if isinstance(probe, PulseProbe):
        _assert_pulses(probe, plan, when)


def _assert_pulses(probe: PulseProbe, plan: StimulationPlan, when: str) -> None:
    """Each planned channel pulses with its own width, frequency and phase type: a width or
    frequency scaled, rounded or taken from another channel changes the charge and the dose the
    limits engine approved as surely as a wrong amplitude."""
    for channel in plan.channels:
        pulse = probe.delivered_pulse(channel.channel)
        planned = (
            f"planned {channel.pulse_width_us} µs at {channel.frequency_hz:g} Hz, "
            f"{channel.phase_type.value}"
        )
        where = f"channel {channel.channel}{' ' + when if when else ''}"
        assert pulse is not None, f"{where} delivers current but no pulse train ({planned})"
        delivered = (
            f"delivered {pulse.pulse_width_us} µs at {pulse.frequency_hz:g} Hz, "
            f"{pulse.phase_type.value}"
            + (
                f", {pulse.pulses_per_period} pulses a period"
                if pulse.pulses_per_period != 1
                else ""
            )
        )
        as_planned = (
            pulse.pulse_width_us == channel.pulse_width_us
            and math.isclose(pulse.frequency_hz, channel.frequency_hz, rel_tol=1e-9)
            and pulse.phase_type is channel.phase_type
            and pulse.pulses_per_period == 1
        )
        assert as_planned, f"{where}: {delivered}, {planned}"


def _live_change(running: ApprovedPlan, *, channel: int, gentle: bool) -> ApprovedPlan:
    """``channel`` changed to another ordinary amplitude plus one device step (so not a whole mA
    where the step allows, and unlike every other channel's) that the limits engine re-approves."""
    plan = running.plan
    step = _plan_ranges(running).amplitude_step_ua
    taken = {c.amplitude_ua for c in plan.channels}
    for ordinary in other_amplitudes(plan.modality, gentle):
        amplitude_ua = ordinary + step
        if amplitude_ua in taken:
            continue
        change = ENGINE.approve_change(running, channel=channel, amplitude_ua=amplitude_ua)
        if change.approved_plan is not None:
            return change.approved_plan
    pytest.fail(f"no other amplitude for channel {channel} is re-approved; override reference_plan")


def _plan_ranges(approved: ApprovedPlan) -> ModalityCapabilities:
    """The device's ranges for the modality of ``approved``."""
    capabilities = approved.capabilities
    assert capabilities is not None, "the plan was approved without the device's capabilities"
    return capabilities.modalities[approved.plan.modality]


def _wider_capabilities(
    capabilities: DeviceCapabilities, plan: StimulationPlan
) -> list[tuple[str, DeviceCapabilities]]:
    """Another device's capabilities, one range at a time wider than this device's: a plan
    approved against any of them was not approved against this device."""
    ranges = capabilities.modalities[plan.modality]

    def with_ranges(**update: object) -> DeviceCapabilities:
        return capabilities.model_copy(
            update={
                "modalities": {
                    **capabilities.modalities,
                    plan.modality: ranges.model_copy(update=update),
                }
            }
        )

    return [
        ("a higher amplitude ceiling", with_ranges(amplitude_max_ua=ranges.amplitude_max_ua + 1)),
        (
            "a longer pulse width ceiling",
            with_ranges(pulse_width_max_us=ranges.pulse_width_max_us + 1),
        ),
        ("a higher frequency ceiling", with_ranges(frequency_max_hz=ranges.frequency_max_hz + 1)),
        (
            "one more channel",
            capabilities.model_copy(update={"channel_count": capabilities.channel_count + 1}),
        ),
    ]


def _assert_failed_safe(driver: Driver, probe: EmulatorProbe, reason: str) -> None:
    """The fail-safe rule: FAULTED with the reason, output off on the device, every later command
    refused, and nothing more written (the heartbeat too has stopped)."""
    assert wait_until(lambda: driver.state is DriverState.FAULTED, 5.0), (
        f"the driver is {driver.state}, not faulted"
    )
    assert re.search(reason, driver.fault_reason or ""), driver.fault_reason
    assert wait_until(lambda: not probe.output_active, 1.0), "the output is still on"
    with pytest.raises(DeviceFaultError):
        driver.pause()
    time.sleep(0.05)  # the best-effort stop written on the fault
    logged = len(probe.wire_log())
    time.sleep(2 * type(driver).heartbeat_interval_s + 0.05)
    assert len(probe.wire_log()) == logged, "the driver kept writing after it faulted"
