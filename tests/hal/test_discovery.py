"""Port discovery: each serial port with its USB ids and the installed drivers that claim them.

The drivers are real installed distributions (a ``.dist-info`` folder on ``sys.path``, found
through ``importlib.metadata`` as any package is). The ports are not: a USB adapter with given
ids cannot be plugged in by a test, so pyserial's port listing is the one thing replaced.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo
from typer.testing import CliRunner

from sessionlog.cli import app
from sessionlog.hal.discovery import scan_ports

FTDI = (0x0403, 0x6001)


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver that claims FTDI's adapter, and one whose module is missing."""
    (tmp_path / "acme_stim_driver.py").write_text(
        "from sessionlog_drivers.simulated.driver import SimulatedDriver\n\n\n"
        "class AcmeDriver(SimulatedDriver):\n"
        '    name = "acme"\n'
        f"    usb_ids = frozenset({{({FTDI[0]}, {FTDI[1]})}})\n"
    )
    dist = tmp_path / "acme_stim-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-stim\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[sessionlog.drivers]\n"
        "acme = acme_stim_driver:AcmeDriver\n"
        "acme-broken = acme_missing_module:AcmeDriver\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def usb_port(device: str, vid: int, pid: int) -> ListPortInfo:
    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.pid = vid, pid
    port.serial_number, port.manufacturer, port.description = "A1", "FTDI", "USB serial"
    return port


@pytest.fixture
def ports(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = ListPortInfo("/dev/ttyS0", skip_link_detection=True)
    listed = [usb_port("/dev/ttyUSB1", 0x1A86, 0x7523), usb_port("/dev/ttyUSB0", *FTDI), plain]
    monkeypatch.setattr(list_ports, "comports", lambda: listed)


@pytest.mark.usefixtures("installed", "ports")
def test_each_port_is_listed_with_the_drivers_that_claim_its_usb_ids() -> None:
    scan = scan_ports()

    assert [p.device for p in scan.ports] == ["/dev/ttyS0", "/dev/ttyUSB0", "/dev/ttyUSB1"]
    claimed = {p.device: p.drivers for p in scan.ports}
    assert claimed == {"/dev/ttyS0": (), "/dev/ttyUSB0": ("acme",), "/dev/ttyUSB1": ()}
    ftdi = scan.ports[1]
    assert (ftdi.vid, ftdi.pid, ftdi.serial_number, ftdi.manufacturer) == (*FTDI, "A1", "FTDI")


@pytest.mark.usefixtures("installed", "ports")
def test_a_driver_that_cannot_be_loaded_is_reported_not_silently_left_out() -> None:
    scan = scan_ports()
    assert "ModuleNotFoundError" in scan.unloadable_drivers["acme-broken"]
    assert "acme" not in scan.unloadable_drivers

    result = CliRunner().invoke(app, ["devices", "scan"])

    assert result.exit_code == 0
    assert "driver acme-broken could not be loaded and claims no port" in result.output
    assert "/dev/ttyUSB0\t0403:6001\tUSB serial\tacme" in result.output
    assert "/dev/ttyS0\t-\t" in result.output
