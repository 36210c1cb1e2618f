"""A live session through the API on the simulated device: run, change, pause, stop, and the record.

Every check of the device reads the emulator behind the real pyserial path; every check of the record
reads it back through the API from the database.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from fastapi.testclient import TestClient

from sessionlog_drivers.simulated import protocol as wire
from tests.api.conftest import assert_problem
from tests.sessions.conftest import connect, create_session, emulator, live_plan
from tests.waiting import wait_until


def status(api: TestClient, session_id: int) -> dict[str, Any]:
    response = api.get(f"/api/v1/sessions/{session_id}/live")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def events(api: TestClient, session_id: int) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api.get(f"/api/v1/sessions/{session_id}/events").json()
    return result


def test_connecting_records_the_device_it_reports(api: TestClient) -> None:
    device_id = connect(api, "channels=2&serial_number=SN-77&seed=1")
    device = api.get(f"/api/v1/devices/{device_id}").json()
    assert device["serial_number"] == "SN-77"
    assert device["capabilities"]["channel_count"] == 2
    assert [c["state"] for c in api.get("/api/v1/connections").json()] == ["ready"]


def test_a_bad_url_is_a_422_naming_the_url(api: TestClient) -> None:
    response = api.post(
        "/api/v1/connections", json={"driver": "simulated", "url": "/dev/nothing-here"}
    )
    assert_problem(response, 422, "url")
    response = api.post("/api/v1/connections", json={"driver": "nope", "url": "sim://"})
    assert_problem(response, 422, "url")


def test_full_session_ramps_runs_changes_and_stops_with_everything_recorded(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api)
    session_id = create_session(api, people, device_id, channel={"ramp_up_s": 0.5})
    device = emulator(api, device_id)

    assert api.post(f"/api/v1/sessions/{session_id}/start").status_code == 200
    assert wait_until(lambda: device.output_amplitude_ua(0) == 20_000)
    ramp = [
        m.amplitude_ua
        for m in (e.message for e in device.command_log)
        if isinstance(m, wire.SetAmplitude)
    ]
    assert ramp[-1] == 20_000
    assert all(a < b for a, b in itertools.pairwise(ramp)), ramp

    refused = api.post(
        f"/api/v1/sessions/{session_id}/intensity", json={"channel": 1, "amplitude_ma": 130}
    )
    problem = assert_problem(refused, 422, "plan.channels[0].amplitude_ua")
    assert problem["verdict"]["approved"] is False
    assert device.output_amplitude_ua(0) == 20_000

    changed = api.post(
        f"/api/v1/sessions/{session_id}/intensity", json={"channel": 1, "amplitude_ma": 24}
    )
    assert changed.status_code == 200, changed.text
    assert wait_until(lambda: device.output_amplitude_ua(0) == 24_000)

    assert api.post(f"/api/v1/sessions/{session_id}/pause").json()["state"] == "paused"
    assert not device.output_active
    assert_problem(api.post(f"/api/v1/sessions/{session_id}/pause"), 409)
    assert api.post(f"/api/v1/sessions/{session_id}/resume").json()["state"] == "running"
    assert wait_until(lambda: device.output_active)
    api.post(f"/api/v1/sessions/{session_id}/live-notes", json={"text": "client comfortable"})
    wait_until(lambda: status(api, session_id)["elapsed_s"] > 1.2)

    stopped = api.post(f"/api/v1/sessions/{session_id}/stop").json()
    assert stopped["state"] == "stopped"
    assert not device.output_active

    assert wait_until(
        lambda: api.get(f"/api/v1/sessions/{session_id}").json()["status"] == "stopped"
    )
    record = api.get(f"/api/v1/sessions/{session_id}").json()
    assert record["mode"] == "live"
    assert record["started_at"] is not None
    assert record["ended_at"] is not None
    assert record["dose"]["total_charge_uc"] > 0
    kinds = [e["kind"] for e in events(api, session_id)]
    assert kinds[0] == "approved"
    assert {"intensity_refused", "intensity_changed", "note"} <= set(kinds)
    transitions = [
        e["payload"]["to"] for e in events(api, session_id) if e["kind"] == "state_changed"
    ]
    assert transitions == ["running", "paused", "running", "stopped"]
    signed_in = api.get("/api/v1/auth/me").json()["user_id"]
    assert all(e["actor_id"] == signed_in for e in events(api, session_id))

    series = api.get(f"/api/v1/sessions/{session_id}/telemetry", params={"max_points": 10}).json()
    assert [s["channel"] for s in series] == [1]
    assert series[0]["samples"] >= 20
    assert len(series[0]["current_ua"]) == 10


def test_planned_duration_ends_the_session_by_itself(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api)
    session_id = create_session(api, people, device_id, duration_s=1)
    api.post(f"/api/v1/sessions/{session_id}/start")
    assert wait_until(lambda: status(api, session_id)["state"] == "completed")
    assert not emulator(api, device_id).output_active
    assert wait_until(
        lambda: api.get(f"/api/v1/sessions/{session_id}").json()["status"] == "completed"
    )
    record = api.get(f"/api/v1/sessions/{session_id}").json()
    assert record["end_reason"] == "planned duration reached"


def test_a_refused_plan_creates_nothing(api: TestClient, people: dict[str, int]) -> None:
    device_id = connect(api, "channels=1&seed=2")
    body = {
        **people,
        "device_id": device_id,
        "plan": live_plan(electrode={"body_site": "eyes", "area_cm2": 4}),
    }
    problem = assert_problem(
        api.post("/api/v1/sessions/live", json=body), 422, "plan.electrode.body_site"
    )
    assert problem["type"] == "/problems/plan-refused"
    assert api.get("/api/v1/sessions").json()["items"] == []


def test_a_warning_must_be_acknowledged_and_the_acknowledgement_is_recorded(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api)
    plan = live_plan(electrode={"body_site": "calf", "area_cm2": 1}, channel={"amplitude_ma": 20})
    body = {**people, "device_id": device_id, "plan": plan}
    assert_problem(api.post("/api/v1/sessions/live", json=body), 422)
    accepted = api.post(
        "/api/v1/sessions/live", json={**body, "acknowledged_warnings": ["current_density_high"]}
    )
    assert accepted.status_code == 201, accepted.text
    session_id = accepted.json()["session_id"]
    approved = events(api, session_id)[0]
    assert approved["kind"] == "approved"
    assert approved["payload"]["acknowledged_warnings"] == ["current_density_high"]


def test_unplugged_device_aborts_the_session_and_keeps_the_telemetry(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api, "channels=1&seed=3&unplug_after_s=1.5")
    session_id = create_session(api, people, device_id)
    device = emulator(api, device_id)
    api.post(f"/api/v1/sessions/{session_id}/start")
    assert wait_until(lambda: status(api, session_id)["state"] == "aborted")
    assert not device.output_active
    assert wait_until(
        lambda: api.get(f"/api/v1/sessions/{session_id}").json()["status"] == "aborted"
    )
    record = api.get(f"/api/v1/sessions/{session_id}").json()
    assert record["end_reason"]
    kinds = [e["kind"] for e in events(api, session_id)]
    assert "fault" in kinds
    series = api.get(f"/api/v1/sessions/{session_id}/telemetry").json()
    assert series
    assert series[0]["samples"] >= 10
    assert_problem(api.post(f"/api/v1/sessions/{session_id}/resume"), 409)


def test_electrode_off_pauses_until_the_practitioner_resumes(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api)
    session_id = create_session(api, people, device_id)
    device = emulator(api, device_id)
    api.post(f"/api/v1/sessions/{session_id}/start")
    assert wait_until(lambda: device.output_active)
    device.set_electrode_off(0)
    assert wait_until(lambda: status(api, session_id)["state"] == "paused")
    kinds = [e["kind"] for e in events(api, session_id)]
    assert "device_warning" in kinds
    device.set_electrode_off(0, off=False)
    assert api.post(f"/api/v1/sessions/{session_id}/resume").json()["state"] == "running"
    assert wait_until(lambda: device.output_active)


def test_a_lost_electrode_off_report_still_pauses_the_session(
    api: TestClient, people: dict[str, int]
) -> None:
    """The device's report is lost on the line, and the electrode is back before anyone looks:
    the device keeps the channel paused, and the periodic device check finds that, so the
    session pauses (to be resumed) rather than recording output the device does not deliver."""
    device_id = connect(api, "channels=1&seed=1")
    session_id = create_session(api, people, device_id)
    device = emulator(api, device_id)
    api.post(f"/api/v1/sessions/{session_id}/start")
    assert wait_until(lambda: device.output_active)
    device.faults.drop_rate = 1.0
    device.set_electrode_off(0)
    time.sleep(0.05)
    device.set_electrode_off(0, off=False)
    time.sleep(0.05)
    device.faults.drop_rate = 0.0

    assert wait_until(lambda: status(api, session_id)["state"] == "paused", 10)
    warnings = [e for e in events(api, session_id) if e["kind"] == "device_warning"]
    assert warnings
    assert "holds channel 1 paused" in warnings[-1]["payload"]["reason"]
    assert api.post(f"/api/v1/sessions/{session_id}/resume").json()["state"] == "running"
    assert wait_until(lambda: device.output_active)


def test_two_devices_run_sessions_at_the_same_time(api: TestClient, people: dict[str, int]) -> None:
    first, second = (
        connect(api, "channels=1&seed=5&serial_number=A"),
        connect(api, "channels=1&seed=6&serial_number=B"),
    )
    sessions = [
        create_session(api, people, first),
        create_session(api, people, second, channel={"amplitude_ma": 30}),
    ]
    for session_id in sessions:
        api.post(f"/api/v1/sessions/{session_id}/start")
    assert wait_until(lambda: emulator(api, first).output_amplitude_ua(0) == 20_000)
    assert wait_until(lambda: emulator(api, second).output_amplitude_ua(0) == 30_000)
    api.post(f"/api/v1/sessions/{sessions[0]}/emergency-stop")
    assert not emulator(api, first).output_active
    assert emulator(api, second).output_active
    assert status(api, sessions[1])["state"] == "running"


def test_live_stream_sends_state_and_telemetry(api: TestClient, people: dict[str, int]) -> None:
    device_id = connect(api)
    session_id = create_session(api, people, device_id, duration_s=1)
    api.post(f"/api/v1/sessions/{session_id}/start")
    seen: set[str] = set()
    with api.stream("GET", f"/api/v1/sessions/{session_id}/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                seen.add(line.removeprefix("event: "))
            if {"status", "telemetry", "state"} <= seen:
                break
    assert {"status", "telemetry", "state"} <= seen


def test_actions_on_unknown_sessions_are_404(api: TestClient) -> None:
    assert_problem(api.post("/api/v1/sessions/999/start"), 404)
    assert_problem(api.get("/api/v1/sessions/999/telemetry"), 404)


def test_a_low_rate_of_corrupted_frames_is_survived_and_counted(
    api: TestClient, people: dict[str, int]
) -> None:
    device_id = connect(api, "channels=1&seed=12&telemetry_hz=100&corrupt_rate=0.03")
    session_id = create_session(api, people, device_id, duration_s=3)
    api.post(f"/api/v1/sessions/{session_id}/start")
    assert wait_until(lambda: status(api, session_id)["state"] == "completed", timeout_s=10)
    assert wait_until(
        lambda: api.get(f"/api/v1/sessions/{session_id}").json()["status"] == "completed"
    )
    errors = api.get(f"/api/v1/sessions/{session_id}").json()["link_errors"]
    assert errors["malformed_frames"] > 0
    assert errors["telemetry_readings"] > 200


def test_a_whole_session_runs_on_the_rehastim2_emulator_through_the_api(
    api: TestClient, people: dict[str, int]
) -> None:
    response = api.post(
        "/api/v1/connections", json={"driver": "rehastim2", "url": "rehastim2://?seed=1"}
    )
    assert response.status_code == 201, response.text
    device_id = response.json()["device"]["id"]
    assert response.json()["device"]["model"].startswith("RehaStim")
    session_id = create_session(
        api, people, device_id, duration_s=2, channel={"frequency_hz": 40, "ramp_up_s": 0.5}
    )
    assert api.post(f"/api/v1/sessions/{session_id}/start").status_code == 200
    changed = api.post(
        f"/api/v1/sessions/{session_id}/intensity", json={"channel": 1, "amplitude_ma": 22}
    )
    assert changed.status_code == 200, changed.text
    assert wait_until(lambda: status(api, session_id)["state"] == "completed", timeout_s=10)
    assert wait_until(
        lambda: api.get(f"/api/v1/sessions/{session_id}").json()["status"] == "completed"
    )
    microcurrent = live_plan(
        modality="microcurrent", channel={"amplitude_ua": 300, "amplitude_ma": None}
    )
    refused = api.post(
        "/api/v1/sessions/live", json={**people, "device_id": device_id, "plan": microcurrent}
    )
    problem = assert_problem(refused, 422)
    assert any(e["code"] == "modality_unsupported" for e in problem["verdict"]["violations"])


def test_live_status_offers_the_intensities_every_layer_allows_and_they_hold(
    api: TestClient, people: dict[str, int]
) -> None:
    # The device reports a 45 mA ceiling: tighter than the 120 mA EMS standard; the standard's
    # EMS floor (no amplitude between 0 and 1 mA, the µA/mA mix-up guard) sets the minimum.
    device_id = connect(api, "channels=2&seed=4&ems_max_ua=45000")
    session_id = create_session(api, people, device_id)

    ranges = status(api, session_id)["intensity_ranges"]

    assert ranges == {"1": {"zero_allowed": True, "min_ua": 1000, "max_ua": 45_000, "step_ua": 1}}
    intensity = f"/api/v1/sessions/{session_id}/intensity"
    assert api.post(f"/api/v1/sessions/{session_id}/start").status_code == 200
    assert api.post(intensity, json={"channel": 1, "amplitude_ua": 45_000}).status_code == 200
    for outside in (45_001, 999):
        assert_problem(
            api.post(intensity, json={"channel": 1, "amplitude_ua": outside}),
            422,
            "plan.channels[0].amplitude_ua",
        )
    assert status(api, session_id)["target_ua"] == {"1": 45_000}
    assert status(api, session_id)["intensity_ranges"] == ranges

    api.post(f"/api/v1/sessions/{session_id}/stop")
    assert status(api, session_id)["intensity_ranges"] is None
