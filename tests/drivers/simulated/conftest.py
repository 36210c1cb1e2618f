"""Fixtures for the simulated stimulator: a hand-driven clock, a deterministic emulator with a tiny
host side that speaks the wire protocol, and out-of-process servers that are always cleaned up.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionlog_drivers.simulated import register_url_handler
from sessionlog_drivers.simulated.clock import ManualClock
from sessionlog_drivers.simulated.config import EmulatorConfig, FaultConfig
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from sessionlog_drivers.simulated.protocol import (
    DEVICE_COMMANDS,
    Ack,
    Command,
    ConfigureChannel,
    Frame,
    FrameDecoder,
    Message,
    Modality,
    Start,
    encode_frame,
)

REPLY_COMMANDS = frozenset({Command.ACK, Command.NAK, Command.IDENTITY, Command.STATUS})


class HostSide:
    """The host end of a deterministic emulator: sends frames, decodes everything that comes back."""

    def __init__(self, emulator: StimulatorEmulator, clock: ManualClock) -> None:
        self.emulator = emulator
        self.clock = clock
        self.decoder = FrameDecoder(accepted=DEVICE_COMMANDS)
        self.received: list[Frame] = []
        self._seq = 0

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def send_raw(self, data: bytes) -> list[Frame]:
        self.emulator.receive(data)
        return self.collect()

    def send(self, message: Message, seq: int | None = None) -> Frame | None:
        """Send one command; return its reply (None if none arrived, e.g. dropped or delayed)."""
        seq = self.next_seq() if seq is None else seq
        frames = self.send_raw(encode_frame(Frame(seq, message)))
        replies = [f for f in frames if f.seq == seq and f.command in REPLY_COMMANDS]
        assert len(replies) <= 1, replies
        return replies[0] if replies else None

    def reply(self, message: Message) -> Message:
        frame = self.send(message)
        assert frame is not None, f"no reply to {message}"
        return frame.message

    def collect(self) -> list[Frame]:
        frames = self.decoder.feed(self.emulator.read_output())
        self.received += frames
        return frames

    def advance(self, seconds: float) -> list[Frame]:
        self.clock.advance(seconds)
        self.emulator.tick()
        return self.collect()

    @staticmethod
    def of_kind(frames: list[Frame], command: Command) -> list[Any]:
        """Messages of one kind (e.g. TELEMETRY or FAULT) among `frames`."""
        return [f.message for f in frames if f.command is command]

    def configure_and_start(
        self,
        channel: int = 0,
        amplitude_ua: int = 20_000,
        modality: Modality = Modality.EMS,
    ) -> None:
        configure = ConfigureChannel(channel, modality, amplitude_ua, 300, 50_000)
        assert self.reply(configure) == Ack(Command.CONFIGURE_CHANNEL)
        assert self.reply(Start(1 << channel)) == Ack(Command.START)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_s=100.0)


@pytest.fixture
def make_host(clock: ManualClock) -> Callable[..., HostSide]:
    """Build a deterministic emulator (keyword args: EmulatorConfig fields and `faults`)."""

    def make(faults: FaultConfig | None = None, **config: Any) -> HostSide:
        emulator = StimulatorEmulator(EmulatorConfig(**config), faults, clock=clock)
        return HostSide(emulator, clock)

    return make


@pytest.fixture
def host(make_host: Callable[..., HostSide]) -> HostSide:
    return make_host()


@pytest.fixture(scope="session", autouse=True)
def _sim_url_handler() -> None:
    register_url_handler()


@pytest.fixture
def spawn() -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    """Start a Python subprocess and return it with its first stdout line; all are killed after."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        processes.append(process)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready, "subprocess printed nothing within 15 s"
        line = process.stdout.readline().strip()
        assert line, f"subprocess exited early: {process.communicate(timeout=5)}"
        return process, line

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
