"""Out-of-process links to a simulated stimulator: a TCP socket or a pseudo-terminal.

A server owns one emulator (one device) and pumps bytes between it and whoever is connected, in a
single thread that also advances the emulator's clock, so there is no second thread to fail. The
device outlives its connections, as hardware outlives a crashed host: when the host process is
killed, output continues until the device watchdog stops it. A new TCP connection takes the device
over from the previous one (like moving the cable to another computer). Hosts connect with
`serial.serial_for_url("socket://HOST:PORT")` or by opening the pty path as a serial port.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import tty
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Self

from sessionlog_drivers.simulated.config import OptionValue, options_to_settings
from sessionlog_drivers.simulated.emulator import StimulatorEmulator

POLL_INTERVAL_S = 0.005
"""Longest time between two emulator steps; bounds the watchdog and telemetry timing error."""

OUTBOX_LIMIT_BYTES = 64 * 1024
"""Device output not taken by a slow or absent reader is dropped past this, as a UART would."""

_READ_CHUNK = 4096


class _LinkServer(ABC):
    """Pumps bytes between one emulator and one link until stopped, closed or unplugged."""

    def __init__(self, emulator: StimulatorEmulator) -> None:
        self.emulator = emulator
        self._outbox = bytearray()
        self._closed = False

    @property
    @abstractmethod
    def address(self) -> str:
        """What a host passes to `serial.serial_for_url` to reach this device."""

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve until `stop` is set, `close()` is called, or the emulated device is unplugged."""
        while not self._closed and not (stop is not None and stop.is_set()):
            if self.emulator.unplugged:
                self.close()
                return
            self._poll(POLL_INTERVAL_S)

    def _pump_output(self) -> None:
        self._outbox += self.emulator.read_output()
        if len(self._outbox) > OUTBOX_LIMIT_BYTES:
            del self._outbox[:-OUTBOX_LIMIT_BYTES]
        if self._outbox:
            del self._outbox[: self._write(bytes(self._outbox))]

    @abstractmethod
    def _poll(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for link activity, feed input, step the emulator, send output."""

    @abstractmethod
    def _write(self, data: bytes) -> int:
        """Send what the link takes without blocking; return how many bytes are done with."""

    @abstractmethod
    def close(self) -> None:
        """Release the link; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class TcpEmulatorServer(_LinkServer):
    """The device on a TCP port; the most recent connection is the one that talks to it."""

    def __init__(
        self, emulator: StimulatorEmulator, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(emulator)
        self._listener = socket.create_server((host, port))
        self._listener.setblocking(False)
        self._client: socket.socket | None = None

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"socket://{host}:{port}"

    def _poll(self, timeout_s: float) -> None:
        readers: list[socket.socket] = [self._listener]
        if self._client is not None:
            readers.append(self._client)
        writers = [self._client] if self._client is not None and self._outbox else []
        readable, _, _ = select.select(readers, writers, [], timeout_s)
        if self._listener in readable:
            self._accept()
        if self._client is not None and self._client in readable:
            self._receive(self._client)
        self.emulator.tick()
        self._pump_output()

    def _accept(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except BlockingIOError:
            return
        connection.setblocking(False)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._drop_client()
        self._client = connection
        self._outbox.clear()

    def _receive(self, client: socket.socket) -> None:
        try:
            data = client.recv(_READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.emulator.receive(data)
        else:
            self._drop_client()

    def _write(self, data: bytes) -> int:
        if self._client is None:
            return len(data)
        try:
            return self._client.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            self._drop_client()
            return len(data)

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        self._closed = True
        self._drop_client()
        self._listener.close()


class PtyEmulatorServer(_LinkServer):
    """The device on the slave side of a pseudo-terminal, opened by hosts like a serial port.

    The server keeps its own handle on the slave so that a host closing the port (or being killed)
    does not hang up the terminal; when the device is unplugged both ends are closed, and the host
    sees the port vanish.
    """

    def __init__(self, emulator: StimulatorEmulator) -> None:
        super().__init__(emulator)
        self._master_fd, self._slave_fd = os.openpty()
        tty.setraw(self._slave_fd)
        os.set_blocking(self._master_fd, False)
        self.path = os.ttyname(self._slave_fd)

    @property
    def address(self) -> str:
        return self.path

    def _poll(self, timeout_s: float) -> None:
        writers = [self._master_fd] if self._outbox else []
        readable, _, _ = select.select([self._master_fd], writers, [], timeout_s)
        if readable:
            with contextlib.suppress(BlockingIOError):
                data = os.read(self._master_fd, _READ_CHUNK)
                if data:
                    self.emulator.receive(data)
        self.emulator.tick()
        self._pump_output()

    def _write(self, data: bytes) -> int:
        try:
            return os.write(self._master_fd, data)
        except BlockingIOError:
            return 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.close(self._master_fd)
        os.close(self._slave_fd)


def _print_address(address: str) -> None:
    print(address, flush=True)


def serve_tcp(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_ready: Callable[[str], None] = _print_address,
    stop: threading.Event | None = None,
    **emulator_options: OptionValue,
) -> None:
    """Run a device on a TCP port (0: any free port) until stopped or unplugged.

    `on_ready` receives the `socket://HOST:PORT` URL once the port listens (default: print it).
    `emulator_options` are the `sim://` query options, e.g. `watchdog_ms=500, seed=1`.
    """
    config, faults = options_to_settings(emulator_options)
    with TcpEmulatorServer(StimulatorEmulator(config, faults), host, port) as server:
        on_ready(server.address)
        server.serve(stop)


def serve_pty(
    *,
    on_ready: Callable[[str], None] = _print_address,
    stop: threading.Event | None = None,
    **emulator_options: OptionValue,
) -> None:
    """Run a device on a new pseudo-terminal until stopped or unplugged.

    `on_ready` receives the slave path (e.g. `/dev/pts/3`) to open as a serial port.
    """
    config, faults = options_to_settings(emulator_options)
    with PtyEmulatorServer(StimulatorEmulator(config, faults)) as server:
        on_ready(server.address)
        server.serve(stop)
