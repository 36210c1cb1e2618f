"""An emergency stop pressed on an ended session after its device was disconnected or dropped and
connected again: it reaches the session now running on that device over its new connection, and
when the device is not connected at all the answer says that no stop was sent.

Through the API on the simulated device; the device's side is read from the emulator behind the new
connection, the record back from the database.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from sessionlog_drivers.simulated import protocol as wire
from tests.api.conftest import assert_problem
from tests.sessions.conftest import create_session, emulator
from tests.waiting import wait_until

DEVICE = "channels=2&seed=1&serial_number=SN-ESTOP"


def connect(api: TestClient, query: str) -> int:
    response = api.post(
        "/api/v1/connections", json={"driver": "simulated", "url": f"sim://?{query}"}
    )
    assert response.status_code == 201, response.text
    device_id: int = response.json()["device"]["id"]
    return device_id


def status(api: TestClient, session_id: int) -> dict[str, Any]:
    response = api.get(f"/api/v1/sessions/{session_id}/live")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def record(api: TestClient, session_id: int) -> dict[str, Any]:
    result: dict[str, Any] = api.get(f"/api/v1/sessions/{session_id}").json()
    return result


def ended_session_then_reconnected(api: TestClient, people: dict[str, int]) -> tuple[int, int]:
    """A session run and stopped on the device, which is then disconnected and connected again
    (a new driver for the same device record)."""
    device_id = connect(api, DEVICE)
    ended = create_session(api, people, device_id)
    assert api.post(f"/api/v1/sessions/{ended}/start").status_code == 200
    assert api.post(f"/api/v1/sessions/{ended}/stop").status_code == 200
    assert api.delete(f"/api/v1/connections/{device_id}").status_code == 204
    assert connect(api, DEVICE) == device_id
    return ended, device_id


def test_an_emergency_stop_on_an_ended_session_stops_the_one_running_after_a_reconnect(
    api: TestClient, people: dict[str, int]
) -> None:
    ended, device_id = ended_session_then_reconnected(api, people)
    device = emulator(api, device_id)
    running = create_session(api, people, device_id)
    api.post(f"/api/v1/sessions/{running}/start")
    assert wait_until(lambda: device.output_amplitude_ua(0) == 20_000)

    response = api.post(f"/api/v1/sessions/{ended}/emergency-stop")

    assert response.status_code == 200, response.text
    assert not device.output_active
    assert status(api, running)["state"] == "stopped"
    assert status(api, running)["output_ua"] == {"1": 0}
    assert wait_until(lambda: record(api, running)["status"] == "stopped")
    assert f"pressed on ended session {ended}" in record(api, running)["end_reason"]


def test_an_emergency_stop_reaches_the_session_running_after_the_device_dropped(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api, f"{DEVICE}&unplug_after_s=1")
    dropped = create_session(api, people, device_id)
    api.post(f"/api/v1/sessions/{dropped}/start")
    assert wait_until(lambda: status(api, dropped)["state"] == "aborted")
    assert api.delete(f"/api/v1/connections/{device_id}").status_code == 204
    assert connect(api, DEVICE) == device_id
    device = emulator(api, device_id)
    running = create_session(api, people, device_id)
    api.post(f"/api/v1/sessions/{running}/start")
    assert wait_until(lambda: device.output_active)

    response = api.post(f"/api/v1/sessions/{dropped}/emergency-stop")

    assert response.status_code == 200, response.text
    assert not device.output_active
    assert status(api, running)["state"] == "stopped"
    assert wait_until(lambda: record(api, running)["status"] == "stopped")
    assert f"pressed on ended session {dropped}" in record(api, running)["end_reason"]


def test_with_no_session_running_the_stop_still_goes_to_the_devices_new_connection(
    api: TestClient, people: dict[str, int]
) -> None:
    ended, device_id = ended_session_then_reconnected(api, people)
    device = emulator(api, device_id)

    response = api.post(f"/api/v1/sessions/{ended}/emergency-stop")

    assert response.status_code == 200, response.text
    assert wait_until(
        lambda: any(isinstance(e.message, wire.EmergencyStop) for e in device.command_log)
    )


def test_an_emergency_stop_with_the_device_not_connected_says_no_stop_was_sent(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api, DEVICE)
    ended = create_session(api, people, device_id)
    api.post(f"/api/v1/sessions/{ended}/start")
    api.post(f"/api/v1/sessions/{ended}/stop")
    assert api.delete(f"/api/v1/connections/{device_id}").status_code == 204

    response = api.post(f"/api/v1/sessions/{ended}/emergency-stop")

    problem = assert_problem(response, 409, "session_id")
    assert problem["type"] == "/problems/device-not-connected"
    assert "no stop was sent" in problem["detail"]
    assert f"device {device_id} is not connected" in problem["errors"][0]["reason"]
    assert record(api, ended)["status"] == "stopped"
