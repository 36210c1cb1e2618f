"""The serial transport: one class over pyserial's ``serial_for_url`` for every kind of port.

``/dev/ttyUSB0``, ``COM3``, ``socket://host:port``, ``loop://``, a pty path and the drivers' own
emulator schemes (``sim://``) all go through this code, so the tests exercise the path real hardware
takes. Reads never hand back partial data as if it were complete: ``read_exact`` raises on a short
read, and pyserial's exceptions become the HAL's typed errors.
"""

from __future__ import annotations

import importlib
import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

import serial
from serial.urlhandler import protocol_socket

from sessionlog.hal.errors import DisconnectedError, TransportError, TransportTimeoutError

logger = logging.getLogger(__name__)

_registered_packages: set[str] = set()
_registration_lock = threading.Lock()


def register_url_handler_package(package: str) -> None:
    """Let ``serial_for_url`` find ``<package>.protocol_<scheme>`` modules (idempotent)."""
    with _registration_lock:
        if package in _registered_packages:
            return
        importlib.import_module(package)
        if package not in serial.protocol_handler_packages:
            serial.protocol_handler_packages.append(package)
        _registered_packages.add(package)


@dataclass(frozen=True)
class SerialSettings:
    """Line settings a driver declares for its device (ScienceMode2: 460800 8E1, no flow control)."""

    baudrate: int = 115_200
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = 1
    rtscts: bool = False
    xonxoff: bool = False


class SerialTransport:
    """An open serial port. Thread-safe for one reader and many writers; ``close`` is idempotent."""

    def __init__(
        self,
        url: str,
        settings: SerialSettings | None = None,
        *,
        poll_interval_s: float = 0.01,
        write_timeout_s: float = 1.0,
    ) -> None:
        settings = settings or SerialSettings()
        self.url = url
        self._poll_interval_s = poll_interval_s
        self._write_lock = threading.Lock()
        self._closed = False
        try:
            self._port = serial.serial_for_url(
                url,
                baudrate=settings.baudrate,
                bytesize=settings.bytesize,
                parity=settings.parity,
                stopbits=settings.stopbits,
                rtscts=settings.rtscts,
                xonxoff=settings.xonxoff,
                timeout=poll_interval_s,
                write_timeout=write_timeout_s,
            )
        except Exception as error:
            # pyserial's URL handlers fail in more ways than they declare (a KeyError from an
            # error message of their own for an unknown option): each is a port that cannot be
            # opened, never a crash of the caller.
            raise TransportError(f"cannot open {url}: {error}") from error
        self._socket_port = isinstance(self._port, protocol_socket.Serial)
        if self._socket_port:
            # pyserial's socket:// handler cannot say how many bytes wait (its ``in_waiting`` is
            # 1 when the socket is readable), so ``read_some`` waits for readability itself and
            # then takes, without blocking, what one ``recv`` returns. The handler ignores every
            # other port setting.
            self._port.timeout = 0

    @property
    def port(self) -> serial.SerialBase:
        """The pyserial port underneath (tests reach an emulator through it)."""
        return self._port

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes, *, unless: Callable[[], None] | None = None) -> None:
        """Write ``data`` whole. ``unless``, if given, runs first under the write lock and may
        raise to write nothing: a writer that another thread's write must not overtake between
        its check and its write (a command frame and an emergency stop) checks there."""
        if self._closed:
            raise DisconnectedError(f"{self.url} is closed")
        with self._write_lock:
            if unless is not None:
                unless()
            try:
                written = self._port.write(data)
                self._port.flush()
            except serial.SerialTimeoutException as error:
                raise TransportTimeoutError(f"write to {self.url} timed out") from error
            except (serial.SerialException, OSError) as error:
                raise DisconnectedError(f"write to {self.url} failed: {error}") from error
        if written is not None and written != len(data):
            raise TransportError(f"short write to {self.url}: {written} of {len(data)} bytes")

    def read_some(self, max_bytes: int = 4096) -> bytes:
        """Whatever arrives within one poll interval (possibly nothing): for a reader loop.

        Once a byte is in, everything else already received comes with it (up to
        ``max_bytes``), so a reader decodes a whole frame per call rather than a byte per call.
        """
        if self._closed:
            raise DisconnectedError(f"{self.url} is closed")
        port = self._port
        try:
            if self._socket_port:
                readable, _, _ = select.select([port.fileno()], [], [], self._poll_interval_s)
                return port.read(max_bytes) if readable else b""
            waiting = port.in_waiting
            if waiting:
                return port.read(min(max_bytes, waiting))
            data: bytes = port.read(1)
            if data and max_bytes > 1:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(min(max_bytes - 1, waiting))
        except (serial.SerialException, OSError, ValueError, TypeError, AttributeError) as error:
            # pyserial's socket handler raises TypeError/AttributeError when closed under a read,
            # and select() a ValueError for a socket closed under it.
            raise DisconnectedError(f"read from {self.url} failed: {error}") from error
        return data

    def read_exact(self, size: int, timeout_s: float) -> bytes:
        """Exactly ``size`` bytes, or ``TransportTimeoutError``: never a silent partial read."""
        deadline = time.monotonic() + timeout_s
        buffer = bytearray()
        while len(buffer) < size:
            if time.monotonic() > deadline:
                raise TransportTimeoutError(
                    f"read from {self.url}: {len(buffer)} of {size} bytes within {timeout_s} s"
                )
            buffer += self.read_some(size - len(buffer))
        return bytes(buffer)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._port.close()
        except (serial.SerialException, OSError) as error:
            logger.warning("closing %s: %s", self.url, error)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
