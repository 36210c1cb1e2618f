"""A command whose reply arrives after the driver faulted or closed did not take effect.

While a command waits for its reply, the driver can fault for another reason: the waiting thread
itself dispatches a device fault or a garbage burst it reads, and the driver then writes the
emergency stop. The device's acknowledgement may still arrive afterwards and match the request, but
what it acknowledges was undone by the stop; a caller told that the command succeeded would record
a change that never reached the patient. Likewise for a reply that comes after ``close``.

The device here is played by the test over a real TCP socket (the driver opens it as
``socket://``), answering every frame as the simulated stimulator's firmware would, except where a
test scripts the answer to SET_AMPLITUDE: that is the one way to put a fault report or line noise
exactly between a command and its acknowledgement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from sessionlog.hal import (
    DeviceFaultError,
    Driver,
    DriverState,
    InvalidStateError,
    open_device,
)
from sessionlog.safety.verdict import ApprovedPlan
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.driver import EMERGENCY_STOP_SEQ
from tests.hal.background import InBackground
from tests.hal.plans import change, ems_plan, start_output
from tests.hal.scripted_device import TIMEOUT_S, ScriptedDevice, connect_patiently, encode
from tests.waiting import wait_until


def line_noise(count: int) -> bytes:
    """``count`` telemetry frames each damaged by one flipped bit, as noise on the line does."""
    noise = bytearray()
    for i in range(count):
        frame = bytearray(
            encode(i, wire.Telemetry(1000 + i, (wire.TelemetrySample(0, 20_000, 1_000),)))
        )
        frame[5] ^= 0x01  # a payload byte: the frame keeps its shape, its CRC no longer matches
        noise += frame
    # The driver's own decoder is the judge of what counts as malformed: make sure it is this.
    decoder = wire.FrameDecoder(accepted=wire.DEVICE_COMMANDS)
    assert decoder.feed(bytes(noise)) == []
    assert decoder.counters.bad_crc == decoder.counters.malformed == count
    return bytes(noise)


@pytest.fixture
def running() -> Iterator[Callable[[Driver], ApprovedPlan]]:
    """Apply the plan and start output on a driver; close the driver afterwards."""
    opened: list[Driver] = []

    def _run(driver: Driver) -> ApprovedPlan:
        opened.append(driver)
        approved = start_output(driver, ems_plan(20, 20))
        assert driver.state is DriverState.RUNNING
        return approved

    yield _run
    for driver in opened:
        driver.close()


def after_the_set_amplitude(device: ScriptedDevice) -> list[wire.Command]:
    """The commands the device received after the (one) SET_AMPLITUDE, heartbeats left out: a
    heartbeat that had passed its state check before the fault may still be written."""
    commands = device.commands()
    assert commands.count(wire.Command.SET_AMPLITUDE) == 1
    later = commands[commands.index(wire.Command.SET_AMPLITUDE) + 1 :]
    return [command for command in later if command is not wire.Command.HEARTBEAT]


def test_an_acknowledgement_that_follows_a_device_fault_does_not_make_the_change_succeed(
    device: ScriptedDevice, running: Callable[[Driver], ApprovedPlan]
) -> None:
    driver = open_device(device.url, driver="simulated")
    approved = running(driver)

    def fault_then_ack(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.SetAmplitude):
            fault = wire.Fault(wire.ErrorCode.HARDWARE_FAULT, wire.DEVICE_WIDE_CHANNEL, 5_000)
            return encode(frame.seq, fault) + encode(frame.seq, wire.Ack(frame.command))
        return device.firmware_answer(frame)

    device.answer = fault_then_ack

    with pytest.raises(DeviceFaultError, match="hardware_fault") as raised:
        driver.set_amplitude(change(approved, 25_000), channel=1)

    assert "void" in str(raised.value)
    assert driver.state is DriverState.FAULTED
    assert "device reported hardware_fault" in (driver.fault_reason or "")
    assert driver.applied_plan is approved, "the change was kept as if it had taken effect"
    driver.close()  # joins the driver's threads: the device has received all it ever will
    assert after_the_set_amplitude(device) == [wire.Command.EMERGENCY_STOP]
    [stop] = [f for f in device.received() if f.command is wire.Command.EMERGENCY_STOP]
    assert stop.seq == EMERGENCY_STOP_SEQ


def test_an_acknowledgement_that_follows_a_garbage_burst_does_not_make_the_change_succeed(
    device: ScriptedDevice, running: Callable[[Driver], ApprovedPlan]
) -> None:
    driver = open_device(device.url, driver="simulated")
    approved = running(driver)
    noise = line_noise(driver.malformed_burst_limit + 1)

    def noise_then_ack(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.SetAmplitude):
            return noise + encode(frame.seq, wire.Ack(frame.command))
        return device.firmware_answer(frame)

    device.answer = noise_then_ack

    with pytest.raises(DeviceFaultError, match="garbage on the link") as raised:
        driver.set_amplitude(change(approved, 25_000), channel=1)

    assert "void" in str(raised.value)
    assert driver.state is DriverState.FAULTED
    assert "garbage on the link" in (driver.fault_reason or "")
    assert driver.counters.malformed_frames == driver.malformed_burst_limit + 1
    assert driver.applied_plan is approved, "the change was kept as if it had taken effect"
    driver.close()
    assert after_the_set_amplitude(device) == [wire.Command.EMERGENCY_STOP]


def test_an_acknowledgement_that_arrives_after_close_does_not_make_the_change_succeed(
    device: ScriptedDevice, running: Callable[[Driver], ApprovedPlan]
) -> None:
    # The device holds back the acknowledgements of a heartbeat and of SET_AMPLITUDE until it
    # sees the stop that ``close`` writes. ``close`` waits for the heartbeat thread, so the port
    # is still open when the acknowledgement of SET_AMPLITUDE arrives, after the driver closed.
    driver = connect_patiently(device)
    approved = running(driver)
    held: list[wire.Frame] = []
    heartbeat_held = threading.Event()

    def hold_until_stopped(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.Heartbeat | wire.SetAmplitude):
            held.append(frame)
            if isinstance(frame.message, wire.Heartbeat):
                heartbeat_held.set()
            return b""
        if isinstance(frame.message, wire.EmergencyStop):
            # The command's reply first: the heartbeat's lets ``close`` go on to close the port.
            held.sort(key=lambda f: f.command is wire.Command.HEARTBEAT)
            replies = [encode(f.seq, wire.Ack(f.command)) for f in held]
            return encode(frame.seq, wire.Ack(frame.command)) + b"".join(replies)
        return device.firmware_answer(frame)

    device.answer = hold_until_stopped
    assert heartbeat_held.wait(TIMEOUT_S)

    command = InBackground(lambda: driver.set_amplitude(change(approved, 25_000), channel=1))
    assert wait_until(lambda: device.has_received(wire.Command.SET_AMPLITUDE), TIMEOUT_S)
    closing = InBackground(driver.close)

    assert command.join(TIMEOUT_S)
    assert closing.join(TIMEOUT_S)
    assert wait_until(lambda: device.has_received(wire.Command.EMERGENCY_STOP), TIMEOUT_S)
    assert command.raised() == [InvalidStateError]
    assert "closed while it was in progress" in str(command.errors[0])
    assert driver.state is DriverState.CLOSED
    assert driver.applied_plan is approved, "the change was kept as if it had taken effect"


def test_a_resume_acknowledged_after_an_emergency_stop_leaves_output_stopped(
    device: ScriptedDevice, running: Callable[[Driver], ApprovedPlan]
) -> None:
    # The device takes RESUME, then the emergency stop, and its acknowledgement of RESUME is still
    # on the line when the stop is written: output ends stopped, and the driver must say so.
    driver = connect_patiently(device)
    running(driver)
    driver.pause()
    held: list[wire.Frame] = []

    def hold_resume_until_stopped(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.Resume):
            held.append(frame)
            return b""
        if isinstance(frame.message, wire.EmergencyStop):
            replies = [encode(f.seq, wire.Ack(f.command)) for f in held]
            return b"".join(replies) + encode(frame.seq, wire.Ack(frame.command))
        return device.firmware_answer(frame)

    device.answer = hold_resume_until_stopped
    command = InBackground(driver.resume)
    assert wait_until(lambda: device.has_received(wire.Command.RESUME), TIMEOUT_S)
    driver.emergency_stop()

    assert command.join(TIMEOUT_S)
    assert command.raised() == [InvalidStateError]
    assert "emergency stop" in str(command.errors[0])
    assert driver.state is DriverState.STOPPED
    assert not driver.output_active


def test_an_emergency_stop_before_a_command_does_not_void_it(
    device: ScriptedDevice, running: Callable[[Driver], ApprovedPlan]
) -> None:
    driver = open_device(device.url, driver="simulated")
    approved = running(driver)
    driver.emergency_stop()
    assert driver.state is DriverState.STOPPED

    driver.apply(approved)  # a new command after the stop is judged on its own
    driver.start()

    assert driver.state is DriverState.RUNNING


def test_a_command_whose_reply_never_comes_before_close_fails_as_closed(
    device: ScriptedDevice, running: Callable[[Driver], ApprovedPlan]
) -> None:
    # The acknowledgement of SET_AMPLITUDE never comes; ``close`` releases the port under the
    # waiting request. That is the close, not a device fault, and the error says so.
    driver = connect_patiently(device)
    approved = running(driver)

    def never_acknowledge_the_change(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.SetAmplitude):
            return b""
        return device.firmware_answer(frame)

    device.answer = never_acknowledge_the_change
    command = InBackground(lambda: driver.set_amplitude(change(approved, 25_000), channel=1))
    assert wait_until(lambda: device.has_received(wire.Command.SET_AMPLITUDE), TIMEOUT_S)
    driver.close()

    assert command.join(TIMEOUT_S)
    assert command.raised() == [InvalidStateError]
    assert "closed while it was in progress" in str(command.errors[0])
    assert driver.state is DriverState.CLOSED
    assert driver.fault_reason is None
    assert wait_until(lambda: device.has_received(wire.Command.EMERGENCY_STOP), TIMEOUT_S)


def test_a_change_the_device_refuses_after_an_emergency_stop_is_void_not_a_fault(
    device: ScriptedDevice, running: Callable[[Driver], ApprovedPlan]
) -> None:
    # The emergency stop overtakes a live change on the line: the device takes the stop first
    # and then refuses the change (it is no longer running). The stop explains the refusal.
    driver = connect_patiently(device)
    approved = running(driver)
    held: list[wire.Frame] = []

    def stop_overtakes_the_change(frame: wire.Frame) -> bytes:
        if isinstance(frame.message, wire.SetAmplitude):
            held.append(frame)
            return b""
        if isinstance(frame.message, wire.EmergencyStop):
            refusals = [
                encode(f.seq, wire.Nak(f.command, wire.ErrorCode.WRONG_STATE)) for f in held
            ]
            return encode(frame.seq, wire.Ack(frame.command)) + b"".join(refusals)
        return device.firmware_answer(frame)

    device.answer = stop_overtakes_the_change
    command = InBackground(lambda: driver.set_amplitude(change(approved, 25_000), channel=1))
    assert wait_until(lambda: device.has_received(wire.Command.SET_AMPLITUDE), TIMEOUT_S)
    driver.emergency_stop()

    assert command.join(TIMEOUT_S)
    assert command.raised() == [InvalidStateError]
    assert "emergency stop" in str(command.errors[0])
    assert "wrong_state" in str(command.errors[0])
    assert driver.state is DriverState.STOPPED
    assert driver.fault_reason is None
    assert driver.applied_plan is approved
