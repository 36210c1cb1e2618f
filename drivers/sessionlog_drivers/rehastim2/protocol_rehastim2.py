"""pyserial URL handler for ``rehastim2://``: a serial port whose far end is an emulated RehaStim 2.

Once ``sessionlog_drivers.rehastim2`` is in ``serial.protocol_handler_packages`` (the HAL does this
from ``RehaStim2Driver.url_handler_package``), ``serial.serial_for_url("rehastim2://?seed=1")``
returns this ``Serial``, so the driver runs its real pyserial code path (write, read with timeout,
``in_waiting``) against the emulated firmware. Writes are decoded synchronously in the caller's
thread; a runner thread advances time. When the device is unplugged, or its runner fails, every port
operation raises ``SerialException`` like a vanished USB adapter. The query options are those of
``config.OPTION_NAMES``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from sessionlog_drivers.rehastim2.config import query_to_settings
from sessionlog_drivers.rehastim2.emulator import RehaStim2Emulator
from sessionlog_drivers.rehastim2.runner import EmulatorRunner

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

SCHEME = "rehastim2"

_WAIT_SLICE_S = 0.05
"""Longest single wait while blocking in ``read``, so unplug and close are noticed promptly."""


class Serial(SerialBase):
    """A pyserial port backed by a real-time ``RehaStim2Emulator``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._emulator: RehaStim2Emulator | None = None
        self._runner: EmulatorRunner | None = None
        super().__init__(*args, **kwargs)

    @property
    def emulator(self) -> RehaStim2Emulator:
        """The device behind this port; still available after ``close()`` for inspection."""
        if self._emulator is None:
            raise SerialException("the rehastim2:// port has not been opened")
        return self._emulator

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        url = self.port
        if url is None:
            raise SerialException("Port must be configured before it can be used.")
        parts = urlsplit(url)
        if parts.scheme.lower() != SCHEME:
            raise SerialException(f"expected a {SCHEME}:// URL, got {url!r}")
        try:
            config, faults = query_to_settings(parts.query)
        except ValueError as error:
            raise SerialException(f"invalid {SCHEME}:// URL {url!r}: {error}") from error
        emulator = RehaStim2Emulator(config, faults)
        runner = EmulatorRunner(emulator)
        runner.start()
        self._emulator, self._runner = emulator, runner
        self.is_open = True

    def close(self) -> None:
        """Stop the emulator's thread; the port can be closed any number of times."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()
        self.is_open = False

    def _device(self) -> RehaStim2Emulator:
        """The emulator if the port is usable, else the exception a real port would raise."""
        if not self.is_open or self._emulator is None:
            raise PortNotOpenError()
        if self._runner is not None and self._runner.error is not None:
            raise SerialException("emulated RehaStim 2 failed") from self._runner.error
        if self._emulator.unplugged:
            raise SerialException("emulated RehaStim 2 disconnected")
        return self._emulator

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes: fewer only when the timeout expires (or at once if it is 0)."""
        device = self._device()
        timeout_s = self.timeout
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        data = bytearray(device.read_output(size))
        while len(data) < size:
            if deadline is None:
                wait_s = _WAIT_SLICE_S
            else:
                wait_s = min(_WAIT_SLICE_S, deadline - time.monotonic())
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
