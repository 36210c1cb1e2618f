"""A simulated stimulator played by a test over a real TCP socket, one frame at a time.

The driver opens it as ``socket://`` like any device; a test scripts the answer to the one command
whose timing matters (a fault report, line noise or silence exactly between a command and its
acknowledgement), which the emulator's own fault injection cannot place so precisely.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from sessionlog.hal import SerialTransport
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.config import EmulatorConfig
from sessionlog_drivers.simulated.driver import SimulatedDriver

TIMEOUT_S = 10.0
"""For every wait on another thread: generous, since a loaded machine may be slow to schedule."""


def encode(seq: int, message: wire.Message) -> bytes:
    return wire.encode_frame(wire.Frame(seq, message))


def identity() -> wire.Identity:
    """The IDENTITY the simulated stimulator's firmware sends with its default configuration."""
    config = EmulatorConfig()
    limits = config.limits
    return wire.Identity(
        protocol_version=wire.PROTOCOL_VERSION,
        model=config.model,
        firmware_version=config.firmware_version,
        serial_number=config.serial_number,
        channel_count=config.channel_count,
        amplitude_limits=tuple(
            wire.ModalityLimit(m, limits.max_amplitude_ua(m)) for m in sorted(config.modalities)
        ),
        pulse_width_min_us=limits.pulse_width_min_us,
        pulse_width_max_us=limits.pulse_width_max_us,
        frequency_min_millihz=limits.frequency_min_millihz,
        frequency_max_millihz=limits.frequency_max_millihz,
        watchdog_timeout_ms=config.watchdog_timeout_ms,
        telemetry_interval_ms=round(1000 * config.telemetry_interval_s),
    )


class ScriptedDevice:
    """The simulated stimulator played over a real socket, one frame at a time.

    ``answer`` turns each frame the host sends into the bytes sent back; by default
    ``firmware_answer``, which acknowledges everything as the firmware does when all is well.
    A test replaces it to script one command's answer. Every frame received is kept, in order.
    """

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self.answer: Callable[[wire.Frame], bytes] = self.firmware_answer
        self._running_mask = 0
        self._received: list[wire.Frame] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-device", daemon=True)
        self._thread.start()

    def firmware_answer(self, frame: wire.Frame) -> bytes:
        message = frame.message
        if isinstance(message, wire.Identify):
            return encode(frame.seq, identity())
        if isinstance(message, wire.GetStatus):
            return encode(frame.seq, self._status())
        if isinstance(message, wire.Start | wire.Resume):
            self._running_mask |= message.channel_mask
        elif isinstance(message, wire.Pause):
            self._running_mask &= ~message.channel_mask
        elif isinstance(message, wire.Stop | wire.EmergencyStop):
            self._running_mask = 0
        return encode(frame.seq, wire.Ack(frame.command))

    def _status(self) -> wire.Status:
        """The STATUS of a device whose output runs on the channels started and not since
        paused or stopped (the driver's periodic status check reads it)."""
        channels = tuple(
            wire.ChannelStatus(
                wire.ChannelState.RUNNING
                if self._running_mask >> i & 1
                else wire.ChannelState.IDLE,
                wire.ChannelFlags(0),
                0,
            )
            for i in range(EmulatorConfig().channel_count)
        )
        return wire.Status(device_time_ms=0, flags=wire.DeviceFlags.NONE, channels=channels)

    def received(self) -> list[wire.Frame]:
        with self._lock:
            return list(self._received)

    def commands(self) -> list[wire.Command]:
        return [frame.command for frame in self.received()]

    def has_received(self, command: wire.Command) -> bool:
        return command in self.commands()

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=TIMEOUT_S)
        self._server.close()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            with connection:
                self._converse(connection)
            return

    def _converse(self, connection: socket.socket) -> None:
        connection.settimeout(0.05)
        decoder = wire.FrameDecoder(accepted=wire.HOST_COMMANDS)
        while not self._done.is_set():
            try:
                data = connection.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return  # the host closed the port
            for frame in decoder.feed(data):
                with self._lock:
                    self._received.append(frame)
                reply = self.answer(frame)
                if reply:
                    connection.sendall(reply)


class PatientSimulatedDriver(SimulatedDriver):
    """The simulated driver with a long reply timeout, so that a reply the test holds back on
    purpose is not given up on while a loaded machine takes its time to schedule the test."""

    reply_timeout_s = TIMEOUT_S


def connect_patiently(device: ScriptedDevice) -> PatientSimulatedDriver:
    driver = PatientSimulatedDriver(
        SerialTransport(device.url, PatientSimulatedDriver.serial_settings)
    )
    driver.connect()
    return driver
