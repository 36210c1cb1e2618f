"""Commands that meet an emergency stop, a close or a read failure leave output stopped.

Each test plays one ordering of two threads, or one failure of the link, that must not end with
the device delivering output while the host believes it is off (or with a success reported for
a command the stop undid). Where the ordering needs a thread held at one point, the test holds
it there with a patched method: a thread's preemption cannot be produced on demand otherwise.
"""

from __future__ import annotations

import socket
import threading

import pytest
from pytest_mock import MockerFixture

from sessionlog.hal import (
    DeviceFaultError,
    DriverState,
    InvalidStateError,
    PlanNotApprovedError,
    open_device,
)
from sessionlog.safety import StimulationPlan
from sessionlog_drivers.rehastim2.driver import RehaStim2Driver
from sessionlog_drivers.rehastim2.emulator import RehaStim2Emulator
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.driver import SimulatedDriver
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from tests.hal.background import InBackground
from tests.hal.plans import ENGINE, ems_plan, start_output
from tests.hal.scripted_device import TIMEOUT_S, ScriptedDevice
from tests.waiting import wait_until


def _outcome(call: InBackground) -> BaseException | None:
    """What the call raised (None if it returned), once it has ended."""
    assert call.join(TIMEOUT_S)
    return call.errors[0] if call.errors else None


def _sim_emulator(driver: object) -> StimulatorEmulator:
    return driver.transport.port.emulator  # type: ignore[attr-defined, no-any-return]


def test_close_while_start_awaits_its_reply_writes_the_stop() -> None:
    """START is on the line and the device acts on it before its ACK: the driver is still
    CONFIGURED, yet output is on, so closing must stop it."""
    driver = open_device("sim://?channels=2&seed=1&latency_ms=250", driver="simulated")
    emulator = _sim_emulator(driver)
    approved = ENGINE.approve(ems_plan(20, 20), capabilities=driver.capabilities).approved_plan
    assert approved is not None
    driver.apply(approved)
    starting = InBackground(driver.start)
    assert wait_until(lambda: emulator.output_active, TIMEOUT_S)

    driver.close()

    error = _outcome(starting)
    assert isinstance(error, InvalidStateError)
    assert "closed while it was in progress" in str(error)
    commands = [entry.command for entry in emulator.command_log]
    assert commands[commands.index(wire.Command.START) :] == [
        wire.Command.START,
        wire.Command.EMERGENCY_STOP,
    ]
    assert not emulator.output_active


class _HalfClosingDevice(ScriptedDevice):
    """A device whose line towards the host ends while it still receives (a half-closed TCP
    serial bridge, a receive error on an adapter)."""

    connection: socket.socket | None = None

    def _converse(self, connection: socket.socket) -> None:
        self.connection = connection
        super()._converse(connection)


def test_a_read_failure_still_writes_the_stop_towards_the_device() -> None:
    device = _HalfClosingDevice()
    try:
        with open_device(device.url, driver="simulated") as driver:
            start_output(driver, ems_plan(20, 20))
            before = len(device.received())
            device.answer = lambda frame: b""
            assert device.connection is not None
            device.connection.shutdown(socket.SHUT_WR)

            assert wait_until(lambda: driver.state is DriverState.FAULTED, TIMEOUT_S)
            assert "link lost" in (driver.fault_reason or "")
            assert wait_until(
                lambda: (
                    wire.Command.EMERGENCY_STOP
                    in [frame.command for frame in device.received()[before:]]
                ),
                TIMEOUT_S,
            )
    finally:
        device.close()


def test_a_resume_of_several_frames_writes_none_after_an_emergency_stop(
    mocker: MockerFixture,
) -> None:
    """RehaStim 2's resume is two packets (init, then start). An emergency stop made while the
    resume is in progress must not be followed by them: they would start the device again."""
    began, stopped = threading.Event(), threading.Event()
    resume = RehaStim2Driver._resume

    def held_resume(self: RehaStim2Driver) -> None:
        began.set()
        stopped.wait(TIMEOUT_S)
        resume(self)

    mocker.patch.object(RehaStim2Driver, "_resume", held_resume)
    with open_device("rehastim2://?seed=3", driver="rehastim2") as driver:
        emulator: RehaStim2Emulator = driver.transport.port.emulator  # type: ignore[attr-defined]
        start_output(driver, ems_plan(20, 20))
        driver.pause()
        resuming = InBackground(driver.resume)
        assert began.wait(TIMEOUT_S)
        commands_before_stop = len(emulator.command_log)
        driver.emergency_stop()
        stopped.set()

        error = _outcome(resuming)
        assert isinstance(error, InvalidStateError)
        assert "emergency stop was made" in str(error)
        assert wait_until(lambda: len(emulator.command_log) > commands_before_stop, TIMEOUT_S)
        after_stop = [entry.command.name for entry in emulator.command_log[commands_before_stop:]]
        assert after_stop[0] == "STOP_CHANNEL_LIST_MODE"
        assert "START_CHANNEL_LIST_MODE" not in after_stop
        assert "INIT_CHANNEL_LIST_MODE" not in after_stop
        assert not emulator.output_active
        assert driver.state is DriverState.STOPPED


def test_a_command_beginning_while_the_stop_is_being_written_is_refused(
    mocker: MockerFixture,
) -> None:
    """The stop is counted and STOPPED entered together, before the write: a resume that begins
    while the stop's bytes are on their way sees STOPPED and is refused, instead of taking the
    stop for an older one and starting output after it."""
    with open_device("sim://?channels=2&seed=2", driver="simulated") as driver:
        emulator = _sim_emulator(driver)
        start_output(driver, ems_plan(20, 20))
        driver.pause()
        stop_frame = driver._emergency_stop_frame()
        writing, release = threading.Event(), threading.Event()
        write = driver.transport.write

        def held_write(data: bytes) -> None:
            if data == stop_frame:
                writing.set()
                release.wait(TIMEOUT_S)
            write(data)

        mocker.patch.object(driver.transport, "write", held_write)
        stopping = InBackground(driver.emergency_stop)
        assert writing.wait(TIMEOUT_S)
        try:
            with pytest.raises(InvalidStateError, match="not possible in state stopped"):
                driver.resume()
        finally:
            release.set()
        assert _outcome(stopping) is None

        assert driver.state is DriverState.STOPPED
        assert wait_until(lambda: not emulator.output_active, TIMEOUT_S)
        assert wire.Command.RESUME not in [entry.command for entry in emulator.command_log]


def test_start_waiting_for_an_apply_starts_the_plan_that_apply_loaded(
    mocker: MockerFixture,
) -> None:
    """A start that waits for an apply in progress sends the plan that apply leaves on the
    device, not the one held when start was called."""
    began, release = threading.Event(), threading.Event()
    apply = RehaStim2Driver._apply

    def held_apply(self: RehaStim2Driver, plan: StimulationPlan) -> None:
        if plan.channels[0].pulse_width_us == 500:
            began.set()
            release.wait(TIMEOUT_S)
        apply(self, plan)

    mocker.patch.object(RehaStim2Driver, "_apply", held_apply)
    with open_device("rehastim2://?seed=3", driver="rehastim2") as driver:
        emulator: RehaStim2Emulator = driver.transport.port.emulator  # type: ignore[attr-defined]
        first = ENGINE.approve(
            ems_plan(60, 60, pulse_width_us=100), capabilities=driver.capabilities
        )
        second = ENGINE.approve(
            ems_plan(10, 10, pulse_width_us=500), capabilities=driver.capabilities
        )
        assert first.approved_plan is not None
        assert second.approved_plan is not None
        driver.apply(first.approved_plan)
        applying = InBackground(lambda: driver.apply(second.approved_plan))  # type: ignore[arg-type]
        assert began.wait(TIMEOUT_S)
        starting = InBackground(driver.start)
        release.set()
        assert _outcome(applying) is None
        assert _outcome(starting) is None

        assert driver.applied_plan is second.approved_plan
        pulse = emulator.output_pulse(1)
        assert (pulse.current_ma, pulse.pulse_width_us) == (10, 500)


def test_two_changes_approved_on_the_same_plan_cannot_both_be_applied(
    mocker: MockerFixture,
) -> None:
    """Each change was approved with the other channel as it was; together they never were. The
    second is judged against the plan the device holds when its turn comes, after the first."""
    began, release = threading.Event(), threading.Event()
    set_amplitude = SimulatedDriver._set_amplitude

    def held_set_amplitude(
        self: SimulatedDriver, plan: StimulationPlan, channel: int, amplitude_ua: int
    ) -> None:
        if channel == 1:
            began.set()
            release.wait(TIMEOUT_S)
        set_amplitude(self, plan, channel, amplitude_ua)

    mocker.patch.object(SimulatedDriver, "_set_amplitude", held_set_amplitude)
    with open_device("sim://?channels=2&seed=1", driver="simulated") as driver:
        emulator = _sim_emulator(driver)
        running = start_output(driver, ems_plan(20, 20))
        first = ENGINE.approve_change(running, channel=1, amplitude_ua=21_000).approved_plan
        second = ENGINE.approve_change(running, channel=2, amplitude_ua=21_000).approved_plan
        assert first is not None
        assert second is not None

        changing_first = InBackground(lambda: driver.set_amplitude(first, channel=1))
        assert began.wait(TIMEOUT_S)
        changing_second = InBackground(lambda: driver.set_amplitude(second, channel=2))
        release.set()

        assert _outcome(changing_first) is None
        error = _outcome(changing_second)
        assert isinstance(error, PlanNotApprovedError)
        assert "approve it on driver.applied_plan" in str(error)
        assert driver.applied_plan is first
        assert [emulator.output_amplitude_ua(ch) for ch in (0, 1)] == [21_000, 20_000]
        assert driver.state is DriverState.RUNNING  # a refusal before the wire is no fault


def test_a_second_stop_after_the_first_was_acknowledged_is_confirmed_on_its_own(
    device: ScriptedDevice,
) -> None:
    """Stop, start again, stop: if the second stop is lost, the first one's acknowledgement
    (in, but not yet looked at by the heartbeat) must not stand for it."""
    stops = 0

    def lose_the_second_stop(frame: wire.Frame) -> bytes:
        nonlocal stops
        if isinstance(frame.message, wire.EmergencyStop):
            stops += 1
            if stops == 2:
                return b""
        return device.firmware_answer(frame)

    device.answer = lose_the_second_stop
    with open_device(device.url, driver="simulated") as driver:
        driver.device_check_every = 0  # type: ignore[misc]  # the confirmation alone must catch it
        approved = start_output(driver, ems_plan(20))
        # The heartbeat does not look at the first stop's reply before the second stop is made
        # (the ordering under test; otherwise it happens only when a beat falls in between).
        driver._check_stop_acknowledgement = lambda: None  # type: ignore[method-assign]
        driver.emergency_stop()
        assert wait_until(lambda: stops == 1 and driver.counters.unmatched_replies == 0, TIMEOUT_S)
        assert wait_until(lambda: _first_stop_answered(driver), TIMEOUT_S)
        start_output(driver, approved.plan)
        driver.emergency_stop()
        del driver._check_stop_acknowledgement

        assert wait_until(lambda: driver.state is DriverState.FAULTED, 3 * TIMEOUT_S)
        assert "emergency stop not acknowledged" in (driver.fault_reason or "")


def _first_stop_answered(driver: object) -> bool:
    pending = driver._stop_confirmation  # type: ignore[attr-defined]
    return pending is not None and pending.waiter.reply is not None


def test_an_apply_overtaken_by_an_emergency_stop_is_void(mocker: MockerFixture) -> None:
    """The simulated device forgets its configuration on an emergency stop, so a plan whose
    loading the stop overtook is not loaded, whatever the acknowledgements said."""
    with open_device("sim://?channels=2&seed=1", driver="simulated") as driver:
        emulator = _sim_emulator(driver)
        approved = ENGINE.approve(ems_plan(20, 20), capabilities=driver.capabilities)
        assert approved.approved_plan is not None
        began, release = threading.Event(), threading.Event()
        apply = type(driver)._apply

        def held_apply(plan: StimulationPlan) -> None:
            began.set()
            release.wait(TIMEOUT_S)
            apply(driver, plan)

        mocker.patch.object(driver, "_apply", held_apply)
        applying = InBackground(lambda: driver.apply(approved.approved_plan))  # type: ignore[arg-type]
        assert began.wait(TIMEOUT_S)
        driver.emergency_stop()
        release.set()

        error = _outcome(applying)
        assert isinstance(error, InvalidStateError)
        assert "emergency stop was made" in str(error)
        assert driver.applied_plan is None
        assert wire.Command.CONFIGURE_CHANNEL not in [e.command for e in emulator.command_log]
        with pytest.raises(InvalidStateError, match="not possible in state stopped"):
            driver.start()


def test_a_fault_during_the_handshake_fails_connect(device: ScriptedDevice) -> None:
    def fault_with_the_identity(frame: wire.Frame) -> bytes:
        answer = device.firmware_answer(frame)
        if isinstance(frame.message, wire.Identify):
            fault = wire.Fault(wire.ErrorCode.HARDWARE_FAULT, wire.DEVICE_WIDE_CHANNEL, 0)
            answer = wire.encode_frame(wire.Frame(0, fault)) + answer
        return answer

    device.answer = fault_with_the_identity
    with pytest.raises(DeviceFaultError, match=r"handshake .* failed: device reported"):
        open_device(device.url, driver="simulated")
