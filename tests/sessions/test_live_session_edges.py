"""Live sessions where two actions, two sessions or a device condition meet: each ends with the
output and the record agreeing, through the API on the simulated device."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem
from tests.sessions.conftest import connect, create_session, emulator
from tests.waiting import wait_until


def status(api: TestClient, session_id: int) -> dict[str, Any]:
    result: dict[str, Any] = api.get(f"/api/v1/sessions/{session_id}/live").json()
    return result


def record(api: TestClient, session_id: int) -> dict[str, Any]:
    result: dict[str, Any] = api.get(f"/api/v1/sessions/{session_id}").json()
    return result


def samples(api: TestClient, session_id: int) -> int:
    series = api.get(f"/api/v1/sessions/{session_id}/telemetry").json()
    return sum(channel["samples"] for channel in series)


def test_an_acknowledged_change_ramps_the_output_to_it(
    api: TestClient, people: dict[str, int]
) -> None:
    """The acknowledgement given with the change holds for the steps towards it too."""
    device_id = connect(api, "channels=1&seed=1")
    session_id = create_session(
        api,
        people,
        device_id,
        electrode={"body_site": "calf", "area_cm2": 1},
        channel={"amplitude_ma": 10},
    )
    device = emulator(api, device_id)
    api.post(f"/api/v1/sessions/{session_id}/start")
    assert wait_until(lambda: device.output_amplitude_ua(0) == 10_000)

    changed = api.post(
        f"/api/v1/sessions/{session_id}/intensity",
        json={"channel": 1, "amplitude_ma": 20, "acknowledged_warnings": ["current_density_high"]},
    )

    assert changed.status_code == 200, changed.text
    assert wait_until(lambda: device.output_amplitude_ua(0) == 20_000)
    time.sleep(0.3)  # several control steps later, the session still runs
    assert status(api, session_id)["state"] == "running"


def test_a_second_session_on_a_busy_device_is_refused(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api, "channels=1&seed=1")
    first = create_session(api, people, device_id)

    refused = api.post(
        "/api/v1/sessions/live",
        json={
            **people,
            "device_id": device_id,
            "plan": api.get(f"/api/v1/sessions/{first}").json()["plan"],
        },
    )

    problem = assert_problem(refused, 409, "device_id")
    assert "has an open session" in problem["detail"]
    api.post(f"/api/v1/sessions/{first}/stop")
    assert create_session(api, people, device_id) > first


def test_an_ended_session_records_nothing_of_the_next_session_on_its_device(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api, "channels=1&seed=1")
    first = create_session(api, people, device_id, duration_s=1)
    api.post(f"/api/v1/sessions/{first}/start")
    assert wait_until(lambda: record(api, first)["status"] == "completed")
    recorded = samples(api, first)
    events_recorded = len(api.get(f"/api/v1/sessions/{first}/events").json())

    second = create_session(api, people, device_id)
    api.post(f"/api/v1/sessions/{second}/start")
    assert wait_until(lambda: samples(api, second) >= 20)
    emulator(api, device_id).set_electrode_off(0)
    assert wait_until(lambda: status(api, second)["state"] == "paused")

    assert samples(api, first) == recorded
    assert len(api.get(f"/api/v1/sessions/{first}/events").json()) == events_recorded


def test_an_emergency_stop_on_an_ended_session_stops_and_ends_the_one_running(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api, "channels=1&seed=1")
    device = emulator(api, device_id)
    first = create_session(api, people, device_id)
    api.post(f"/api/v1/sessions/{first}/start")
    api.post(f"/api/v1/sessions/{first}/stop")
    second = create_session(api, people, device_id)
    api.post(f"/api/v1/sessions/{second}/start")
    assert wait_until(lambda: device.output_active)

    response = api.post(f"/api/v1/sessions/{first}/emergency-stop")

    assert response.status_code == 200
    assert not device.output_active
    assert status(api, second)["state"] == "stopped"
    assert status(api, second)["output_ua"] == {"1": 0}
    assert wait_until(lambda: record(api, second)["status"] == "stopped")
    assert f"pressed on ended session {first}" in record(api, second)["end_reason"]


def test_resume_with_the_electrode_still_off_is_refused_and_the_session_stays_paused(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api, "channels=1&seed=1")
    device = emulator(api, device_id)
    session_id = create_session(api, people, device_id)
    api.post(f"/api/v1/sessions/{session_id}/start")
    assert wait_until(lambda: device.output_active)
    device.set_electrode_off(0)
    assert wait_until(lambda: status(api, session_id)["state"] == "paused")

    refused = api.post(f"/api/v1/sessions/{session_id}/resume")

    problem = assert_problem(refused, 409)
    assert "electrode still off" in problem["detail"]
    assert status(api, session_id)["state"] == "paused"
    assert [c["state"] for c in api.get("/api/v1/connections").json()] == ["paused"]
    device.set_electrode_off(0, off=False)
    assert api.post(f"/api/v1/sessions/{session_id}/resume").json()["state"] == "running"


def test_a_change_records_who_acknowledged_which_warning_once(
    api: TestClient, people: dict[str, int]
) -> None:
    """A warning acknowledged when the session was planned holds for the session; a later
    change that raises it on two channels names it once, as acknowledged earlier, not as the
    acknowledgement of whoever made the change."""
    device_id = connect(api, "channels=2&seed=1")
    plan = {
        "modality": "ems",
        "duration_s": 30,
        "electrode": {"body_site": "calf", "area_cm2": 1},
        "channels": [
            {"channel": n, "amplitude_ma": 20, "pulse_width_us": 300, "frequency_hz": 35}
            for n in (1, 2)
        ],
    }
    created = api.post(
        "/api/v1/sessions/live",
        json={
            **people,
            "device_id": device_id,
            "plan": plan,
            "acknowledged_warnings": ["current_density_high"],
        },
    )
    assert created.status_code == 201, created.text
    session_id = created.json()["session_id"]

    changed = api.post(
        f"/api/v1/sessions/{session_id}/intensity", json={"channel": 2, "amplitude_ma": 21}
    )

    assert changed.status_code == 200, changed.text
    [event] = [
        e
        for e in api.get(f"/api/v1/sessions/{session_id}/events").json()
        if e["kind"] == "intensity_changed"
    ]
    assert event["payload"].get("warnings_acknowledged_earlier") == ["current_density_high"], event
    assert "acknowledged_warnings" not in event["payload"]
