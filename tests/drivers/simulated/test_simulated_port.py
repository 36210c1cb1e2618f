"""The `sim://` pyserial URL handler: a real pyserial path to an emulator running in real time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import serial
from serial.serialutil import PortNotOpenError, SerialException

from sessionlog_drivers.simulated import URL_HANDLER_PACKAGE, open_sim_port, register_url_handler
from sessionlog_drivers.simulated.config import FaultConfig, query_to_settings
from sessionlog_drivers.simulated.emulator import FaultKind
from sessionlog_drivers.simulated.protocol import (
    DEVICE_COMMANDS,
    Ack,
    Command,
    ConfigureChannel,
    EmergencyStop,
    ErrorCode,
    Frame,
    FrameDecoder,
    Identify,
    Identity,
    Message,
    Modality,
    Start,
    encode_frame,
)
from sessionlog_drivers.simulated.protocol_sim import Serial as SimSerial

URL = (
    "sim://?channels=2&modalities=ems,microcurrent&watchdog_ms=1000&seed=1"
    "&corrupt_rate=0&drop_rate=0&latency_ms=0"
)


class Link:
    """Minimal host over a pyserial port: send a command, wait for the frame answering it."""

    def __init__(self, port: serial.SerialBase) -> None:
        self.port = port
        self.decoder = FrameDecoder(accepted=DEVICE_COMMANDS)
        self.frames: list[Frame] = []
        self.seq = 0

    def send(self, message: Message) -> int:
        self.seq = (self.seq + 1) & 0xFF
        self.port.write(encode_frame(Frame(self.seq, message)))
        return self.seq

    def wait_for(self, predicate, timeout_s: float = 1.0) -> Frame:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for frame in self.decoder.feed(self.port.read(self.port.in_waiting or 1)):
                self.frames.append(frame)
                if predicate(frame):
                    return frame
        raise AssertionError(f"no matching frame within {timeout_s} s; got {self.frames}")

    def request(self, message: Message) -> Message:
        seq = self.send(message)
        reply = self.wait_for(lambda f: f.seq == seq and f.command is not Command.TELEMETRY)
        return reply.message


@pytest.fixture
def open_port() -> Iterator:
    ports: list[serial.SerialBase] = []

    def open_(url: str = URL, timeout: float = 0.05) -> serial.SerialBase:
        port = serial.serial_for_url(url, timeout=timeout)
        ports.append(port)
        return port

    yield open_
    for port in ports:
        port.close()


def keep_reading(port: serial.SerialBase, for_s: float) -> None:
    """Read for a while; returns normally only if the port never raised."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        port.read(64)


def emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sessionlog-sim-emulator"]


def test_register_url_handler_is_idempotent() -> None:
    register_url_handler()
    register_url_handler()
    assert serial.protocol_handler_packages.count(URL_HANDLER_PACKAGE) == 1


def test_sim_url_round_trip_with_the_url_options_applied(open_port) -> None:
    link = Link(open_port("sim://?channels=3&modalities=ems&watchdog_ms=700&seed=2"))
    identity = link.request(Identify())
    assert isinstance(identity, Identity)
    assert identity.channel_count == 3
    assert identity.modalities == {Modality.EMS}
    assert identity.watchdog_timeout_ms == 700


def test_output_through_the_port_and_command_log(open_port) -> None:
    port = open_port()
    link = Link(port)
    configure = ConfigureChannel(0, Modality.EMS, 15_000, 250, 40_000)
    assert link.request(configure) == Ack(Command.CONFIGURE_CHANNEL)
    assert link.request(Start(1)) == Ack(Command.START)
    assert port.emulator.output_amplitude_ua(0) == 15_000
    telemetry = link.wait_for(lambda f: f.command is Command.TELEMETRY, timeout_s=0.5)
    assert telemetry.message.samples[0].channel == 0
    assert [entry.message for entry in port.emulator.command_log] == [configure, Start(1)]


def test_real_time_watchdog_stops_output_and_sends_fault(open_port) -> None:
    port = open_port("sim://?watchdog_ms=150")
    link = Link(port)
    link.request(ConfigureChannel(0, Modality.EMS, 15_000, 250, 40_000))
    started = time.monotonic()
    link.request(Start(1))
    fault = link.wait_for(lambda f: f.command is Command.FAULT, timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert fault.message.error is ErrorCode.WATCHDOG_EXPIRED
    assert 0.14 <= elapsed < 0.5
    assert not port.emulator.output_active


def test_unplug_makes_the_port_raise_and_stops_output(open_port) -> None:
    port = open_port("sim://?unplug_after_s=0.3&watchdog_ms=5000")
    link = Link(port)
    link.request(ConfigureChannel(0, Modality.EMS, 15_000, 250, 40_000))
    link.request(Start(1))
    assert port.emulator.output_active
    with pytest.raises(SerialException, match="disconnected"):
        keep_reading(port, for_s=2.0)
    assert not port.emulator.output_active
    assert port.emulator.fault_log[-1].kind is FaultKind.UNPLUGGED
    with pytest.raises(SerialException):
        port.write(encode_frame(Frame(1, EmergencyStop())))
    with pytest.raises(SerialException):
        _ = port.in_waiting


def test_blocking_read_wakes_when_unplugged_at_run_time(open_port) -> None:
    port = open_port(timeout=None)
    threading.Timer(0.1, port.emulator.unplug).start()
    started = time.monotonic()
    with pytest.raises(SerialException):
        port.read(10)
    assert time.monotonic() - started < 1.0


def test_read_returns_short_only_after_the_timeout(open_port) -> None:
    port = open_port(timeout=0.1)
    started = time.monotonic()
    assert port.read(10) == b""
    assert time.monotonic() - started >= 0.09


def test_latency_is_observed_through_the_port(open_port) -> None:
    port = open_port("sim://?latency_ms=80")
    port.write(encode_frame(Frame(1, Identify())))
    started = time.monotonic()
    assert port.read(1) == b""  # the 50 ms read timeout passes before the reply is due
    link = Link(port)
    link.wait_for(lambda f: f.command is Command.IDENTITY)
    assert time.monotonic() - started >= 0.07


def test_reset_input_buffer_discards_what_the_device_sent(open_port) -> None:
    port = open_port()
    port.write(encode_frame(Frame(1, Identify())))
    assert port.in_waiting > 0
    port.reset_input_buffer()
    assert port.in_waiting == 0


def test_faults_can_be_switched_at_run_time_through_the_port(open_port) -> None:
    port = open_port()
    link = Link(port)
    link.request(ConfigureChannel(1, Modality.EMS, 15_000, 250, 40_000))
    link.request(Start(0b10))
    port.emulator.set_electrode_off(1)
    fault = link.wait_for(lambda f: f.command is Command.FAULT)
    assert (fault.message.error, fault.message.channel) == (ErrorCode.ELECTRODE_OFF, 1)


def test_close_twice_stops_the_thread_and_keeps_the_log(open_port) -> None:
    port = open_port()
    port.write(encode_frame(Frame(1, Identify())))
    assert emulator_threads()
    port.close()
    port.close()
    assert not emulator_threads()
    assert not port.is_open
    assert len(port.emulator.command_log) == 1
    with pytest.raises(PortNotOpenError):
        port.read(1)


def test_open_sim_port_returns_the_emulator_backed_port() -> None:
    with open_sim_port("sim://?channels=1", timeout=0.05) as port:
        assert isinstance(port, SimSerial)
        assert port.emulator.config.channel_count == 1
    with pytest.raises(TypeError, match="did not open a sim:// port"):
        open_sim_port("loop://")


def test_port_is_a_context_manager() -> None:
    with serial.serial_for_url(URL, timeout=0.05) as port:
        assert port.is_open
    assert not port.is_open
    assert not emulator_threads()


def test_failing_emulator_thread_stops_output_and_surfaces_the_error(open_port, mocker) -> None:
    port = open_port()
    link = Link(port)
    link.request(ConfigureChannel(0, Modality.EMS, 15_000, 250, 40_000))
    link.request(Start(1))
    mocker.patch.object(port.emulator, "tick", side_effect=RuntimeError("tick broke"))
    # keep_reading returns at the first error; the generous bound is for a loaded machine.
    with pytest.raises(SerialException, match="failed") as raised:
        keep_reading(port, for_s=5.0)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert not port.emulator.output_active


@pytest.mark.parametrize(
    "url",
    ["sim://?chanels=2", "sim://?channels=9", "sim://?corrupt_rate=2", "sim://?nak_code=NOPE"],
)
def test_bad_url_options_are_refused_not_ignored(url: str) -> None:
    with pytest.raises(SerialException, match="invalid sim:// URL"):
        serial.serial_for_url(url)
    assert not emulator_threads()


def test_query_options_map_to_emulator_settings() -> None:
    config, faults = query_to_settings(
        "channels=4&modalities=microcurrent&watchdog_ms=1200&telemetry_hz=10&seed=7"
        "&ems_max_ua=100000&frequency_max_hz=150&unplug_after_s=3&corrupt_rate=0.01"
        "&nak_next=1&nak_code=busy&electrode_off=0,2&device_error=true&latency_ms=5"
    )
    assert config.channel_count == 4
    assert config.modalities == {Modality.MICROCURRENT}
    assert config.watchdog_timeout_ms == 1200
    assert config.telemetry_rate_hz == 10
    assert config.seed == 7
    assert config.limits.ems_max_amplitude_ua == 100_000
    assert config.limits.frequency_max_millihz == 150_000
    assert faults == FaultConfig(
        unplug_after_s=3.0,
        corrupt_rate=0.01,
        latency_ms=5.0,
        nak_next=1,
        nak_code=ErrorCode.BUSY,
        electrode_off=frozenset({0, 2}),
        device_error=True,
    )
