"""What a caller of POST /connections may have the service open: a serial device, an emulator, or a
network serial port on a host the site lists; never another file or another machine.

Each refusal is a 422 naming ``url`` before anything is opened, so a refused path or host leaves
no device record and reveals nothing about the server's files.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sessionlog.api.app import create_app
from sessionlog.api.device_urls import refusal
from sessionlog.security.scopes import Scope
from sessionlog.settings import Settings
from tests.api.conftest import assert_problem
from tests.conftest import bearer, create_user
from tests.hal.scripted_device import ScriptedDevice

LOOPBACK = ["127.0.0.1", "localhost", "::1"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/etc/passwd", "under /dev/"),
        ("/dev/../etc/passwd", "without '.', '..'"),
        ("/dev//ttyUSB0", "without '.', '..'"),
        ("relative/ttyUSB0", "under /dev/"),
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
    assert reason in (refusal(url, LOOPBACK) or "")

    response = api.post("/api/v1/connections", json={"driver": "simulated", "url": url})

    problem = assert_problem(response, 422, "url")
    assert reason in problem["errors"][0]["reason"]
    assert api.get("/api/v1/devices").json()["items"] == []


@pytest.mark.parametrize(
    "url",
    [
        "/dev/ttyUSB0",
        "/dev/serial/by-id/usb-Hasomed_RehaStim2-if00",
        "/dev/pts/3",
        "COM3",
        "sim://?channels=2",
        "rehastim2://?seed=1",
        "loop://",
        "socket://127.0.0.1:7000",
        "socket://localhost:7000",
        "rfc2217://[::1]:2217",
    ],
)
def test_devices_emulators_and_loopback_ports_may_be_opened(url: str) -> None:
    assert refusal(url, LOOPBACK) is None


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
