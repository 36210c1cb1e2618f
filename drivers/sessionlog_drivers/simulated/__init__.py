"""Simulated reference stimulator: its wire protocol (`protocol`), its firmware emulator
(`emulator`), a pyserial `sim://` URL handler (`protocol_sim`) and out-of-process servers on a pty or
TCP socket (`server`). It is the device every layer above the HAL can be tested against end to end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import serial

if TYPE_CHECKING:
    from sessionlog_drivers.simulated.protocol_sim import Serial as SimSerial

URL_HANDLER_PACKAGE = "sessionlog_drivers.simulated"


def register_url_handler() -> None:
    """Make `serial.serial_for_url("sim://...")` open an in-process emulator; safe to call again."""
    if URL_HANDLER_PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(URL_HANDLER_PACKAGE)


def open_sim_port(url: str = "sim://", **serial_options: Any) -> SimSerial:
    """Open a `sim://` URL through pyserial and return it typed as the emulator-backed port.

    Goes through `serial.serial_for_url` like any driver would, so the URL handler is exercised;
    the return type gives typed access to `.emulator` for tests.
    """
    from sessionlog_drivers.simulated.protocol_sim import Serial

    register_url_handler()
    port = serial.serial_for_url(url, **serial_options)
    if not isinstance(port, Serial):
        port.close()
        raise TypeError(f"{url!r} did not open a sim:// port")
    return port
