"""A reply key shared by two requests in flight is a driver defect the base class refuses.

A driver matches each reply to the request that waits for it by a key (the simulated protocol's
sequence number). Were two requests in flight under one key, either could take the other's
reply: a heartbeat's acknowledgement would pass for a live change's. The base class refuses the
second request before writing it, and the refusal fails safe like any other fault.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionlog.hal import (
    DeviceFaultError,
    DriverState,
    DuplicateReplyKeyError,
    HalError,
    SerialTransport,
)
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated import register_url_handler
from sessionlog_drivers.simulated.driver import SimulatedDriver
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from tests.hal.background import InBackground
from tests.hal.plans import change, ems_plan, start_output
from tests.waiting import wait_until

REUSED_SEQ = 7


class OneSequenceNumber(SimulatedDriver):
    """Sends the messages of the types in ``reuse`` under one sequence number; beats every 10 ms."""

    heartbeat_interval_s = 0.01
    device_check_every = 0
    reuse: frozenset[type[wire.Message]] = frozenset()

    def _frame(self, message: wire.Message) -> tuple[bytes, int]:
        if type(message) not in self.reuse:
            return super()._frame(message)
        return wire.encode_frame(wire.Frame(REUSED_SEQ, message)), REUSED_SEQ


@pytest.fixture
def driver() -> Iterator[OneSequenceNumber]:
    register_url_handler()
    device = OneSequenceNumber(SerialTransport("sim://?channels=2&seed=3"))
    device.connect()
    yield device
    device.close()


def emulator_of(driver: SimulatedDriver) -> StimulatorEmulator:
    emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
    return emulator


def test_a_request_under_a_key_still_awaited_faults_the_driver_with_output_stopped(
    driver: OneSequenceNumber,
) -> None:
    approved = start_output(driver, ems_plan(20, 20))
    emulator = emulator_of(driver)
    assert emulator.output_active
    # Each reply now takes 100 ms, so a heartbeat (every 10 ms) is almost always in flight when
    # a change is sent, or a change when a heartbeat is.
    emulator.faults.latency_ms = 100
    driver.reuse = frozenset({wire.Heartbeat, wire.SetAmplitude})
    refused: list[HalError] = []
    for step in range(50):
        try:
            driver.set_amplitude(change(approved, 20_000 + 1000 * (step % 2)), channel=1)
        except HalError as error:
            refused.append(error)
            break
    assert refused, "no change was refused"
    assert isinstance(refused[0], DeviceFaultError)
    assert driver.state is DriverState.FAULTED
    reason = driver.fault_reason or ""
    assert f"reply key {REUSED_SEQ}" in reason
    assert "driver defect" in reason
    assert wait_until(lambda: not emulator.output_active)


def test_the_second_request_under_a_key_is_refused_before_it_is_written(
    driver: OneSequenceNumber,
) -> None:
    start_output(driver, ems_plan(20, 20))
    emulator = emulator_of(driver)
    emulator.faults.latency_ms = 300
    driver.reuse = frozenset({wire.GetStatus})
    # The reply to the first status read waits 300 ms; meanwhile a second one (as the heartbeat
    # thread's device check would send it) asks for the same key.
    first = InBackground(driver.read_status)
    assert wait_until(
        lambda: any(e.command is wire.Command.GET_STATUS for e in emulator.command_log)
    )
    frames_before = len(emulator.command_log)
    with pytest.raises(DuplicateReplyKeyError) as refusal:
        driver._request(*driver._frame(wire.GetStatus()), "second status read")
    assert refusal.value.key == REUSED_SEQ
    assert refusal.value.operation == "second status read"
    assert first.join(5.0)
    assert first.errors == []
    later = [e.command for e in emulator.command_log[frames_before:]]
    assert wire.Command.GET_STATUS not in later
