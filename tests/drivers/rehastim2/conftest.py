"""Fixtures for the RehaStim 2: a hand-driven clock with an emulator and a tiny PC side that speaks
ScienceMode2, and drivers opened over the real pyserial path to an in-process emulator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionlog.hal import DriverState, SerialTransport
from sessionlog.hal.transport import register_url_handler_package
from sessionlog_drivers.rehastim2 import URL_HANDLER_PACKAGE
from sessionlog_drivers.rehastim2 import protocol as wire
from sessionlog_drivers.rehastim2.config import EmulatorConfig, FaultConfig
from sessionlog_drivers.rehastim2.driver import RehaStim2Driver
from sessionlog_drivers.rehastim2.emulator import RehaStim2Emulator
from sessionlog_drivers.simulated.clock import ManualClock


class PcSide:
    """The PC end of a deterministic emulator: sends packets, decodes everything that comes back."""

    def __init__(self, emulator: RehaStim2Emulator, clock: ManualClock) -> None:
        self.emulator = emulator
        self.clock = clock
        self.decoder = wire.PacketDecoder(accepted=wire.DEVICE_COMMANDS)
        self.received: list[wire.Packet] = []
        self._number = 0

    def next_number(self) -> int:
        self._number = (self._number + 1) & 0xFF
        return self._number

    def send_raw(self, data: bytes) -> list[wire.Packet]:
        self.emulator.receive(data)
        return self.collect()

    def send(self, message: wire.Message, number: int | None = None) -> list[wire.Packet]:
        number = self.next_number() if number is None else number
        return self.send_raw(wire.encode_packet(wire.Packet(number, message)))

    def reply(self, message: wire.Message) -> wire.Message:
        """Send a command and return the one answer that echoes its packet number."""
        number = self.next_number()
        answers = [p for p in self.send(message, number) if p.packet_number == number]
        assert len(answers) == 1, answers
        return answers[0].message

    def collect(self) -> list[wire.Packet]:
        packets = self.decoder.feed(self.emulator.read_output())
        self.received += packets
        return packets

    def advance(self, seconds: float) -> list[wire.Packet]:
        self.clock.advance(seconds)
        self.emulator.tick()
        return self.collect()

    def connect(self) -> None:
        """Answer the device's first Init with InitAck 0."""
        inits = [p for p in self.collect() + self.received if isinstance(p.message, wire.Init)]
        assert inits, "the device sent no Init"
        self.send(wire.InitAck(wire.AckResult.OK), inits[-1].packet_number)
        assert self.emulator.connected

    def start_channel_list(
        self, channels: tuple[int, ...] = (1,), current_ma: int = 20, interval_coded: int = 38
    ) -> None:
        init = wire.InitChannelListMode(frozenset(channels), interval_coded, 13)
        assert self.reply(init) == wire.InitChannelListModeAck(wire.AckResult.OK)
        pulses = tuple(wire.ChannelPulse(wire.PulseGroup.SINGLE, 300, current_ma) for _ in channels)
        start = wire.StartChannelListMode(pulses)
        assert self.reply(start) == wire.StartChannelListModeAck(wire.AckResult.OK)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_s=50.0)


@pytest.fixture
def make_pc(clock: ManualClock) -> Callable[..., PcSide]:
    """A deterministic emulator (keyword args: EmulatorConfig fields and ``faults``)."""

    def make(faults: FaultConfig | None = None, **config: Any) -> PcSide:
        emulator = RehaStim2Emulator(EmulatorConfig(**config), faults, clock=clock)
        return PcSide(emulator, clock)

    return make


@pytest.fixture
def pc(make_pc: Callable[..., PcSide]) -> PcSide:
    """A connected PC side."""
    side = make_pc()
    side.connect()
    return side


@pytest.fixture(scope="session", autouse=True)
def _rehastim2_url_handler() -> None:
    register_url_handler_package(URL_HANDLER_PACKAGE)


def emulator_of(driver: RehaStim2Driver) -> RehaStim2Emulator:
    emulator: RehaStim2Emulator = driver.transport.port.emulator  # type: ignore[attr-defined]
    return emulator


@pytest.fixture
def open_rehastim() -> Iterator[Callable[..., RehaStim2Driver]]:
    """Open and connect a driver on ``rehastim2://?<query>`` exactly as ``open_device`` would
    (the driver's line settings, then ``connect``); every one is closed afterwards."""
    opened: list[RehaStim2Driver] = []

    def _open(query: str = "seed=3") -> RehaStim2Driver:
        transport = SerialTransport(f"rehastim2://?{query}", RehaStim2Driver.serial_settings)
        driver = RehaStim2Driver(transport)
        opened.append(driver)
        driver.connect()
        assert driver.state is DriverState.READY
        return driver

    yield _open
    for driver in opened:
        driver.close()
