"""Who reads the port: a command waiting for its reply reads it itself, and nothing is lost for it.

The driver base class lets one thread at a time read the port: the reader thread while no command
waits, otherwise a waiting command's own thread, which dispatches every frame it meets exactly as
the reader thread would. These tests run the simulated driver against its emulator (latency
injected where a wait must be long enough to observe) and check the consequences: the reply to a
command is not handed over by the reader thread, telemetry keeps flowing to listeners with no frame
lost or delivered twice, a listener cannot deadlock the driver by issuing a command, the emergency
stop is not held up by a waiting command, and a disconnect met by a waiting command fails safe.
"""

from __future__ import annotations

import itertools
import threading
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
    Reply,
    TelemetryReading,
    open_device,
)
from sessionlog.safety.verdict import ApprovedPlan
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from tests.hal.background import InBackground
from tests.hal.plans import change, ems_plan, start_output
from tests.waiting import wait_until


def emulator_of(driver: Driver) -> StimulatorEmulator:
    emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
    return emulator


@pytest.fixture
def start_device() -> Iterator[Callable[[str], tuple[Driver, ApprovedPlan]]]:
    opened: list[Driver] = []

    def _start(query: str) -> tuple[Driver, ApprovedPlan]:
        driver = open_device(f"sim://?channels=2&seed=3&{query}", driver="simulated")
        opened.append(driver)
        return driver, start_output(driver, ems_plan(20, 20))

    yield _start
    for driver in opened:
        driver.close()


def record_decoding_threads(driver: Driver) -> list[tuple[int, list[Any]]]:
    """Wrap the driver's decoder to note which thread decoded what."""
    calls: list[tuple[int, list[Any]]] = []
    decode = driver._decode

    def recording(data: bytes) -> list[Any]:
        messages = decode(data)
        calls.append((threading.get_ident(), messages))
        return messages

    driver._decode = recording  # type: ignore[method-assign]
    return calls


def test_the_reply_to_a_command_is_read_by_a_waiting_thread_not_handed_over_by_the_reader(
    start_device: Callable[[str], tuple[Driver, ApprovedPlan]],
) -> None:
    # The reply comes 150 ms after the command: far longer than the reader thread's poll, so
    # the reader has parked by then and a waiting thread reads the port.
    driver, approved = start_device("latency_ms=150&telemetry_hz=50")
    calls = record_decoding_threads(driver)

    driver.set_amplitude(change(approved, 25_000), channel=1)

    [sent] = [e for e in emulator_of(driver).command_log if e.command is wire.Command.SET_AMPLITUDE]
    readers = [
        thread
        for thread, messages in calls
        if any(isinstance(m, Reply) and m.key == sent.seq for m in messages)
    ]
    assert len(readers) == 1
    assert driver._reader is not None
    assert readers[0] != driver._reader.ident


def test_telemetry_that_arrives_while_a_command_waits_is_delivered_by_the_waiting_thread(
    start_device: Callable[[str], tuple[Driver, ApprovedPlan]],
) -> None:
    driver, approved = start_device("latency_ms=150&telemetry_hz=100")
    delivered_on: list[int] = []
    driver.add_listener(
        lambda event: (
            delivered_on.append(threading.get_ident())
            if isinstance(event, TelemetryReading)
            else None
        )
    )
    assert wait_until(lambda: len(delivered_on) >= 2)

    before = len(delivered_on)
    driver.set_amplitude(change(approved, 25_000), channel=1)

    during = delivered_on[before:]
    assert len(during) >= 4  # about 15 frames of 2 readings in 150 ms
    assert threading.get_ident() in during or (
        driver._heartbeat is not None and driver._heartbeat.ident in during
    )


def test_no_telemetry_frame_is_lost_or_delivered_twice_while_commands_stream(
    start_device: Callable[[str], tuple[Driver, ApprovedPlan]],
) -> None:
    driver, approved = start_device("telemetry_hz=200")
    device_times: list[int] = []
    driver.add_listener(
        lambda event: (
            device_times.append(event.device_time_ms or 0)
            if isinstance(event, TelemetryReading) and event.channel == 1
            else None
        )
    )
    changes = [change(approved, 20_000 + (i % 10) * 1000) for i in range(10)]
    deadline = time.monotonic() + 0.8
    sent = 0
    while time.monotonic() < deadline:
        driver.set_amplitude(changes[sent % 10], channel=1)
        sent += 1
        if sent % 4 == 0:
            time.sleep(0.003)  # lets the reader thread take the port back between commands
    time.sleep(0.05)  # the reader thread takes over again and reads what came after

    assert sent > 60
    assert len(device_times) > 60
    steps = [later - earlier for earlier, later in itertools.pairwise(device_times)]
    assert all(step > 0 for step in steps), "a frame was delivered twice or out of order"
    assert max(steps) <= 7, "a frame was lost (the interval is 5 ms)"
    assert driver.counters.malformed_frames == 0
    assert driver.state is DriverState.RUNNING


def test_a_listener_that_issues_a_command_gets_an_error_not_a_deadlock(
    start_device: Callable[[str], tuple[Driver, ApprovedPlan]],
) -> None:
    driver, approved = start_device("latency_ms=100&telemetry_hz=100")
    raised: list[BaseException] = []

    def pausing_listener(event: TelemetryReading | DeviceFaultReport) -> None:
        try:
            driver.pause()
        except BaseException as error:
            raised.append(error)
            raise

    driver.add_listener(pausing_listener)
    command = threading.Thread(target=driver.set_amplitude, args=(change(approved, 25_000), 1))
    command.start()
    command.join(timeout=3)

    assert not command.is_alive(), "the command deadlocked"
    assert raised
    assert all(isinstance(error, InvalidStateError) for error in raised)
    assert "listener" in str(raised[0])
    assert driver.state is DriverState.RUNNING
    assert emulator_of(driver).output_amplitude_ua(0) == 25_000
    assert not any(e.command is wire.Command.PAUSE for e in emulator_of(driver).command_log), (
        "the listener's command reached the device"
    )


def test_an_emergency_stop_is_not_held_up_by_a_command_waiting_for_its_reply(
    start_device: Callable[[str], tuple[Driver, ApprovedPlan]],
) -> None:
    driver, approved = start_device("latency_ms=300&telemetry_hz=100")
    emulator = emulator_of(driver)
    command = InBackground(lambda: driver.set_amplitude(change(approved, 25_000), channel=1))
    assert wait_until(
        lambda: any(e.command is wire.Command.SET_AMPLITUDE for e in emulator.command_log)
    )

    called = time.monotonic()
    driver.emergency_stop()
    [stop] = [e for e in emulator.command_log if e.command is wire.Command.EMERGENCY_STOP]

    assert stop.timestamp_s - called < 0.05
    assert command.running, "the command should still be waiting for its delayed reply"
    assert not emulator.output_active
    assert command.join(3)
    assert driver.state is DriverState.STOPPED
    # The change was acknowledged before the device took the stop: the stop overtook it.
    assert command.raised() == [InvalidStateError]


def test_a_disconnect_met_by_a_waiting_command_faults_the_driver_with_output_stopped(
    start_device: Callable[[str], tuple[Driver, ApprovedPlan]],
) -> None:
    driver, approved = start_device("latency_ms=200")
    emulator = emulator_of(driver)
    command = InBackground(lambda: driver.set_amplitude(change(approved, 25_000), channel=1))
    assert wait_until(
        lambda: any(e.command is wire.Command.SET_AMPLITUDE for e in emulator.command_log)
    )
    emulator.unplug()

    assert command.join(3)
    assert command.raised() == [DeviceFaultError]
    assert driver.state is DriverState.FAULTED
    assert "link lost" in (driver.fault_reason or "")
    assert not emulator.output_active
