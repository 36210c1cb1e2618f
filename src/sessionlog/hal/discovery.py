"""Port discovery: which serial ports exist and which installed drivers claim them by USB id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from serial.tools import list_ports

from sessionlog.hal.errors import HalError
from sessionlog.hal.registry import available_drivers, load_driver


@dataclass(frozen=True)
class PortInfo:
    device: str
    description: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    manufacturer: str | None
    drivers: tuple[str, ...]
    """Installed drivers whose declared USB ids match this port."""


@dataclass(frozen=True)
class PortScan:
    ports: tuple[PortInfo, ...]
    unloadable_drivers: Mapping[str, str]
    """Installed drivers that could not be loaded, with the reason: they claim no port, and the
    user should learn why rather than see their device go unclaimed."""


def scan_ports() -> PortScan:
    """The serial ports (by device path) and, for each, the installed drivers that claim it."""
    claims: dict[tuple[int, int], list[str]] = {}
    unloadable: dict[str, str] = {}
    for name in available_drivers():
        try:
            driver_class = load_driver(name)
        except HalError as error:
            unloadable[name] = str(error)
            continue
        for claimed in driver_class.usb_ids:
            claims.setdefault(claimed, []).append(name)
    ports = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        usb_id: tuple[int, int] | None = None
        if port.vid is not None and port.pid is not None:
            usb_id = (port.vid, port.pid)
        ports.append(
            PortInfo(
                device=port.device,
                description=port.description,
                vid=port.vid,
                pid=port.pid,
                serial_number=port.serial_number,
                manufacturer=port.manufacturer,
                drivers=tuple(claims.get(usb_id, ())) if usb_id else (),
            )
        )
    return PortScan(tuple(ports), unloadable)
