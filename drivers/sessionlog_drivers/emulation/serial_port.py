"""The pyserial port whose far end is an in-process emulated device, shared by every URL scheme: a
driver package's handler module (`protocol_<scheme>.py`, where pyserial looks for it) subclasses
`EmulatedSerial`, names its scheme and says how to build its emulator from the URL query, and the
port then behaves like real hardware on the driver's own pyserial code path (write, read with
timeout, `in_waiting`, buffer resets). Writes are decoded synchronously by the emulator in the
caller's thread; a runner thread advances time. When the emulated device is unplugged, or its
runner fails, every port operation raises `SerialException` like a vanished USB adapter.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from sessionlog_drivers.emulation.device import EmulatedDevice
from sessionlog_drivers.emulation.runner import EmulatorRunner

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

DeviceT = TypeVar("DeviceT", bound=EmulatedDevice[Any, Any, Any, Any])

WAIT_SLICE_S = 0.05
"""Longest single wait while blocking in `read`, so unplug and close are noticed promptly."""


class EmulatedSerial(SerialBase, Generic[DeviceT]):
    """A pyserial port backed by a real-time emulator built from the port's URL."""

    SCHEME: ClassVar[str]
    """The URL scheme this port opens, e.g. `sim` for `sim://`."""
    DEVICE_NAME: ClassVar[str]
    """How errors name the device, e.g. `simulated device`."""
    RUNNER: ClassVar[type[EmulatorRunner[Any]]] = EmulatorRunner
    """The runner that ticks the emulator, so its thread carries the driver's name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._emulator: DeviceT | None = None
        self._runner: EmulatorRunner[Any] | None = None
        super().__init__(*args, **kwargs)

    @abstractmethod
    def _create_emulator(self, query: str) -> DeviceT:
        """The device the URL query describes; a ValueError means the URL is invalid."""

    @property
    def emulator(self) -> DeviceT:
        """The device behind this port, for reading its command log and switching faults.

        Still available after `close()` so a test can inspect what reached the wire.
        """
        if self._emulator is None:
            raise SerialException(f"the {self.SCHEME}:// port has not been opened")
        return self._emulator

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        url = self.port
        if url is None:
            raise SerialException("Port must be configured before it can be used.")
        parts = urlsplit(url)
        if parts.scheme.lower() != self.SCHEME:
            raise SerialException(f"expected a {self.SCHEME}:// URL, got {url!r}")
        try:
            emulator = self._create_emulator(parts.query)
        except ValueError as exc:
            raise SerialException(f"invalid {self.SCHEME}:// URL {url!r}: {exc}") from exc
        runner = self.RUNNER(emulator)
        runner.start()
        self._emulator, self._runner = emulator, runner
        self.is_open = True

    def close(self) -> None:
        """Stop the emulator's thread; the port can be closed any number of times."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()
        self.is_open = False

    def _device(self) -> DeviceT:
        """The emulator if the port is usable, else the exception a real port would raise."""
        if not self.is_open or self._emulator is None:
            raise PortNotOpenError()
        if self._runner is not None and self._runner.error is not None:
            raise SerialException(f"{self.DEVICE_NAME} failed") from self._runner.error
        if self._emulator.unplugged:
            raise SerialException(f"{self.DEVICE_NAME} disconnected")
        return self._emulator

    def read(self, size: int = 1) -> bytes:
        """Up to `size` bytes: fewer only when the timeout expires (or at once if timeout is 0)."""
        device = self._device()
        timeout_s = self.timeout
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        data = bytearray(device.read_output(size))
        while len(data) < size:
            if deadline is None:
                wait_s = WAIT_SLICE_S
            else:
                wait_s = min(WAIT_SLICE_S, deadline - time.monotonic())
                if wait_s <= 0:
                    break
            device.wait_for_output(wait_s)
            device = self._device()
            data += device.read_output(size - len(data))
        return bytes(data)

    def write(self, data: ReadableBuffer, /) -> int:
        payload = bytes(data)
        self._device().receive(payload)
        return len(payload)

    @property
    def in_waiting(self) -> int:
        return self._device().output_waiting

    @property
    def out_waiting(self) -> int:
        self._device()
        return 0

    def reset_input_buffer(self) -> None:
        self._device().discard_output()

    def reset_output_buffer(self) -> None:
        self._device()

    def _reconfigure_port(self) -> None:
        """Line settings mean nothing to an in-process device; accepted as set."""

    def _update_break_state(self) -> None:
        """No line to break."""

    def _update_rts_state(self) -> None:
        """No modem lines."""

    def _update_dtr_state(self) -> None:
        """No modem lines."""

    @property
    def cts(self) -> bool:
        self._device()
        return True

    @property
    def dsr(self) -> bool:
        self._device()
        return True

    @property
    def ri(self) -> bool:
        self._device()
        return False

    @property
    def cd(self) -> bool:
        self._device()
        return True
