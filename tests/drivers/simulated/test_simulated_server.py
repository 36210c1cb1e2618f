"""The simulated stimulator in its own process, on TCP and on a pty: a host that dies or falls silent
leaves the device to stop its own output when the watchdog expires."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import serial
from serial.serialutil import SerialException

from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from sessionlog_drivers.simulated.protocol import (
    DEVICE_COMMANDS,
    Ack,
    ChannelState,
    Command,
    ConfigureChannel,
    DeviceFlags,
    ErrorCode,
    Frame,
    FrameDecoder,
    GetStatus,
    Message,
    Modality,
    Start,
    Status,
    encode_frame,
)
from sessionlog_drivers.simulated.server import TcpEmulatorServer

WATCHDOG_S = 0.5
"""Long enough that a loaded machine connects the observer before it expires, short for speed."""
SERVER = ("-m", "sessionlog_drivers.simulated")
OPTIONS = ("--options", f"watchdog_ms={int(WATCHDOG_S * 1000)}&seed=4")

HOST_SCRIPT = textwrap.dedent(
    """
    import sys, time, serial
    from sessionlog_drivers.simulated.protocol import *
    port = serial.serial_for_url(sys.argv[1], timeout=0.05)
    decoder = FrameDecoder()
    port.write(encode_frame(Frame(1, ConfigureChannel(0, Modality.EMS, 30000, 300, 50000))))
    port.write(encode_frame(Frame(2, Start(1))))
    acks = []
    deadline = time.monotonic() + 5
    while len(acks) < 2 and time.monotonic() < deadline:
        acks += [f for f in decoder.feed(port.read(64)) if f.command is Command.ACK]
    print("started" if len(acks) == 2 else f"failed {acks}", flush=True)
    time.sleep(60)
    """
)


class Link:
    """Host side over any pyserial port: collects frames, answers requests by sequence number."""

    def __init__(self, port: serial.SerialBase) -> None:
        self.port = port
        self.decoder = FrameDecoder(accepted=DEVICE_COMMANDS)
        self.frames: list[tuple[float, Frame]] = []
        self.seq = 0

    def wait_for(self, predicate, timeout_s: float) -> Frame:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for frame in self.decoder.feed(self.port.read(self.port.in_waiting or 1)):
                self.frames.append((time.monotonic(), frame))
                if predicate(frame):
                    return frame
        raise AssertionError(f"no matching frame within {timeout_s} s: {self.frames}")

    def request(self, message: Message, timeout_s: float = 2.0) -> Message:
        self.seq += 1
        seq = self.seq
        self.port.write(encode_frame(Frame(seq, message)))
        frame = self.wait_for(lambda f: f.seq == seq and f.command in _REPLIES, timeout_s)
        return frame.message


_REPLIES = {Command.ACK, Command.NAK, Command.STATUS, Command.IDENTITY}


def assert_all_idle_after_watchdog(link: Link) -> None:
    status = link.request(GetStatus())
    assert isinstance(status, Status)
    assert DeviceFlags.WATCHDOG_EXPIRED in status.flags
    assert {ch.state for ch in status.channels} <= {ChannelState.IDLE, ChannelState.UNCONFIGURED}
    assert {ch.output_amplitude_ua for ch in status.channels} == {0}


def test_tcp_device_stops_by_itself_after_the_host_is_killed(spawn) -> None:
    server, url = spawn(*SERVER, "--tcp", "127.0.0.1:0", *OPTIONS)
    assert url.startswith("socket://127.0.0.1:")
    host, line = spawn("-c", HOST_SCRIPT, url)
    assert line == "started"
    host.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    with serial.serial_for_url(url, timeout=0.05) as port:
        link = Link(port)
        # Output is still on right after the kill: telemetry keeps coming...
        first = link.wait_for(lambda f: f.command in {Command.TELEMETRY, Command.FAULT}, 1.0)
        assert first.command is Command.TELEMETRY
        # ...until the device watchdog stops it, within the watchdog time of the last command.
        fault = link.wait_for(lambda f: f.command is Command.FAULT, WATCHDOG_S + 1.0)
        assert fault.message.error is ErrorCode.WATCHDOG_EXPIRED
        assert time.monotonic() - killed_at < WATCHDOG_S + 0.5
        assert_all_idle_after_watchdog(link)
    assert server.poll() is None  # the device outlives its hosts


def test_pty_device_stops_when_heartbeats_stop(spawn) -> None:
    _, path = spawn(*SERVER, "--pty", *OPTIONS)
    assert path.startswith("/dev/")
    with serial.serial_for_url(path, timeout=0.05) as port:
        link = Link(port)
        configure = ConfigureChannel(0, Modality.MICROCURRENT, 400, 100_000, 500)
        assert link.request(configure) == Ack(Command.CONFIGURE_CHANNEL)
        assert link.request(Start(1)) == Ack(Command.START)
        last_command_at = time.monotonic()
        fault = link.wait_for(lambda f: f.command is Command.FAULT, WATCHDOG_S + 1.0)
        stopped_after = time.monotonic() - last_command_at
        assert fault.message.error is ErrorCode.WATCHDOG_EXPIRED
        assert WATCHDOG_S - 0.02 <= stopped_after < WATCHDOG_S + 0.5
        telemetry_times = [t for t, f in link.frames if f.command is Command.TELEMETRY]
        assert telemetry_times, "output was on before the watchdog expired"
        assert_all_idle_after_watchdog(link)


def test_tcp_server_unplug_disconnects_the_host_and_ends_the_process(spawn) -> None:
    server, url = spawn(*SERVER, "--tcp", "127.0.0.1:0", "--options", "unplug_after_s=0.3")
    with serial.serial_for_url(url, timeout=0.05) as port, pytest.raises(SerialException):
        Link(port).wait_for(lambda f: False, timeout_s=3.0)
    assert server.wait(timeout=5) == 0


def test_cli_refuses_an_unknown_option() -> None:
    result = subprocess.run(
        [sys.executable, *SERVER, "--pty", "--options", "watchdgo_ms=10"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown emulator option 'watchdgo_ms'" in result.stderr


@pytest.mark.parametrize(
    ("address", "status", "words"),
    [
        ("bad", 2, "is not HOST:PORT"),
        ("127.0.0.1:99999", 2, "port of 0-65535"),
        ("192.0.2.1:0", 1, "error: "),  # an address of another machine: nothing to bind
    ],
)
def test_cli_refuses_an_address_it_cannot_listen_on(address: str, status: int, words: str) -> None:
    result = subprocess.run(
        [sys.executable, *SERVER, "--tcp", address],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == status
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_newest_tcp_connection_takes_the_device_over() -> None:
    stop = threading.Event()
    with TcpEmulatorServer(StimulatorEmulator()) as server:
        thread = threading.Thread(target=server.serve, args=(stop,))
        thread.start()
        try:
            with serial.serial_for_url(server.address, timeout=0.05) as first:
                with serial.serial_for_url(server.address, timeout=0.05) as second:
                    assert Link(second).request(GetStatus()).COMMAND is Command.STATUS
                with pytest.raises(SerialException):
                    Link(first).wait_for(lambda f: False, timeout_s=2.0)
        finally:
            stop.set()
            thread.join(timeout=5)
    assert not thread.is_alive()
