"""Port discovery: which serial ports exist and which installed drivers claim them by USB id."""

from __future__ import annotations

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


def scan_ports() -> list[PortInfo]:
    claims: dict[tuple[int, int], list[str]] = {}
    for name in available_drivers():
        try:
            driver_class = load_driver(name)
        except HalError:
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
    return ports
