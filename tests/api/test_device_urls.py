"""What a caller of POST /connections may have the service open: a serial device, an emulator, or a
network serial port on a host the site lists; never another file or another machine.

Each refusal is a 422 naming ``url`` before anything is opened, so a refused path or host leaves
no device record and reveals nothing about the server's files.
"""

from __future__ import annotations

import os
import pty
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sessionlog.api import device_urls
from sessionlog.api.app import create_app
from sessionlog.api.device_urls import refusal
from sessionlog.security.scopes import Scope
from sessionlog.settings import Settings
from tests.api.conftest import assert_problem
from tests.conftest import bearer, create_user
from tests.hal.scripted_device import ScriptedDevice

LOOPBACK = ["127.0.0.1", "localhost", "::1"]
PATHS = Settings.model_fields["device_paths"].get_default(call_default_factory=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/etc/passwd", "not a serial port path this site allows"),
        ("/dev/../etc/passwd", "without '.', '..'"),
        ("/dev/pts/../shm/x", "without '.', '..'"),
        ("/dev//ttyUSB0", "without '.', '..'"),
        ("relative/ttyUSB0", "not a serial port path"),
        ("/dev/shm/anything", "not a serial port path"),
        ("/dev/fd/3", "not a serial port path"),
        ("/dev/stdin", "not a serial port path"),
        ("/dev/tty", "not a serial port path"),
        ("/dev/watchdog", "not a serial port path"),
        ("/dev/pts/0", "not a serial port path"),  # a terminal, perhaps the service's own
        ("/dev/ttyS0", "not a serial port path"),  # often the login console
        ("COM7", "not a serial port path"),  # off Windows, a file in the working folder
        ("loop://?logging=debug", "takes no options"),
        ("loop://?bogus=1", "takes no options"),
        ("rfc2217://127.0.0.1:2217?timeout=inf", "takes no options"),
        ("socket://127.0.0.1:7000?logging=debug", "takes no options"),
        ("socket://127.0.0.1:7000#x", "takes no options"),
        ("socket://10.255.255.1:80", "host 10.255.255.1 is not one"),
        ("socket://127.0.0.1:80@10.0.0.1:81", "host 10.0.0.1 is not one"),
        ("rfc2217://192.0.2.7:2217", "host 192.0.2.7 is not one"),
        ("socket://:7000", "host (none) is not one"),
        ("spy://127.0.0.1:7000", "spy:// is not a serial URL"),
        ("hwgrep://.*", "hwgrep:// is not a serial URL"),
    ],
)
def test_a_url_outside_devices_emulators_and_listed_hosts_is_refused(
    url: str, reason: str, api: TestClient
) -> None:
    assert reason in (refusal(url, LOOPBACK, PATHS) or "")

    response = api.post("/api/v1/connections", json={"driver": "simulated", "url": url})

    problem = assert_problem(response, 422, "url")
    assert reason in problem["errors"][0]["reason"]
    assert api.get("/api/v1/devices").json()["items"] == []


@pytest.mark.parametrize(
    "url",
    [
        "/dev/ttyUSB0",
        "/dev/ttyACM1",
        "/dev/serial/by-id/usb-Hasomed_RehaStim2-if00",
        "sim://?channels=2",
        "rehastim2://?seed=1",
        "loop://",
        "socket://127.0.0.1:7000",
        "socket://localhost:7000",
        "rfc2217://[::1]:2217",
    ],
)
def test_devices_emulators_and_loopback_ports_may_be_opened(url: str) -> None:
    assert refusal(url, LOOPBACK, PATHS) is None


def test_a_pty_a_site_lists_may_be_opened_and_a_file_a_pattern_allows_is_not(
    tmp_path: Path,
) -> None:
    leader, follower = pty.openpty()
    try:
        name = os.ttyname(follower)
        assert "not a serial port path" in (refusal(name, LOOPBACK, PATHS) or "")
        assert refusal(name, LOOPBACK, [*PATHS, "/dev/pts/*"]) is None
    finally:
        os.close(leader)
        os.close(follower)
    plain = tmp_path / "ttyUSB0"
    plain.write_text("not a device")
    allowing = [str(tmp_path / "tty*")]
    assert refusal(str(plain), LOOPBACK, allowing) == (
        "not a serial port: the path names no character device"
    )
    link = tmp_path / "ttyUSB1"
    link.symlink_to("/etc/passwd")
    assert "not a serial port path" in (refusal(str(link), LOOPBACK, allowing) or "")


@pytest.fixture
def device() -> Iterator[ScriptedDevice]:
    scripted = ScriptedDevice()
    yield scripted
    scripted.close()


def test_a_network_port_on_a_listed_host_connects(api: TestClient, device: ScriptedDevice) -> None:
    response = api.post("/api/v1/connections", json={"driver": "simulated", "url": device.url})

    assert response.status_code == 201, response.text
    assert response.json()["url"] == device.url


def test_a_site_that_lists_no_host_refuses_every_network_port(
    settings: Settings, device: ScriptedDevice
) -> None:
    closed = settings.model_copy(update={"device_hosts": []})
    with TestClient(create_app(closed), raise_server_exceptions=False) as client:
        user_id = create_user(client.app.state.engine, "tester", "admin")  # type: ignore[attr-defined]
        client.headers.update(bearer(client, user_id, "admin", frozenset(Scope)))
        response = client.post(
            "/api/v1/connections", json={"driver": "simulated", "url": device.url}
        )

    problem = assert_problem(response, 422, "url")
    assert "(SESSIONLOG_DEVICE_HOSTS: none)" in problem["errors"][0]["reason"]
    assert device.received() == []


def test_a_com_port_is_a_device_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_urls.os, "name", "nt")
    assert refusal("COM3", LOOPBACK, PATHS) is None
    assert refusal("com12", LOOPBACK, PATHS) is None
