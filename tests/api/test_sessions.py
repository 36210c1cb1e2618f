"""Recording sessions delivered on standalone devices, and the bad inputs around them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, created, ems_plan, session_body


def test_recorded_session_reads_back_with_plan_dose_and_no_flag(
    api: TestClient, refs: dict[str, int]
) -> None:
    session = created(api, "/sessions", session_body(refs))
    fetched = api.get(f"/api/v1/sessions/{session['id']}").json()
    assert fetched == session
    assert fetched["mode"] == "recorded"
    assert fetched["status"] == "completed"
    assert fetched["plan"]["channels"][0]["amplitude_ua"] == 30_000
    assert fetched["plan"]["electrode"] == {
        "body_site": "thigh_anterior",
        "side": "left",
        "area_cm2": 50.0,
    }
    assert fetched["started_at"].startswith("2026-11-20T08:00:00")
    assert fetched["out_of_limits"] is False
    assert fetched["violations"] == []
    assert fetched["dose"]["total_charge_uc"] > 0
    assert fetched["dose"]["on_time_s"] == pytest.approx(1200)


def test_out_of_limits_record_is_stored_and_flagged_with_the_violation(
    api: TestClient, refs: dict[str, int]
) -> None:
    plan = ems_plan(
        channels=[{"channel": 1, "amplitude_ma": 125, "pulse_width_us": 300, "frequency_hz": 35}]
    )
    session = created(api, "/sessions", session_body(refs, plan=plan))
    assert session["out_of_limits"] is True
    amplitude = [v for v in session["violations"] if v["field"] == "channels[0].amplitude_ua"]
    assert amplitude, session["violations"]
    assert amplitude[0]["layer"] == "standard"
    assert amplitude[0]["value"] == 125_000
    assert amplitude[0]["bound"] == 120_000
    assert amplitude[0]["source"]


def test_forbidden_site_is_flagged_on_a_record(api: TestClient, refs: dict[str, int]) -> None:
    plan = ems_plan(electrode={"body_site": "chest_transthoracic", "area_cm2": 50})
    session = created(api, "/sessions", session_body(refs, plan=plan))
    assert session["out_of_limits"] is True
    assert any(v["field"] == "electrode.body_site" for v in session["violations"])


def test_microcurrent_given_in_ma_by_mistake_is_flagged(
    api: TestClient, refs: dict[str, int]
) -> None:
    plan = {
        "modality": "microcurrent",
        "duration_s": 1800,
        "electrode": {"body_site": "face", "area_cm2": 4},
        "channels": [
            {"channel": 1, "amplitude_ma": 300, "pulse_width_us": 250_000, "frequency_hz": 0.5}
        ],
    }
    session = created(api, "/sessions", session_body(refs, plan=plan))
    assert session["plan"]["channels"][0]["amplitude_ua"] == 300_000
    assert session["out_of_limits"] is True


def test_adverse_events_and_notes_are_appended_events(
    api: TestClient, refs: dict[str, int]
) -> None:
    body = session_body(
        refs,
        adverse_events=[{"description": "skin redness under electrode", "severity": "mild"}],
    )
    session = created(api, "/sessions", body)
    note = api.post(f"/api/v1/sessions/{session['id']}/notes", json={"text": "client felt tired"})
    assert note.status_code == 201
    events = api.get(f"/api/v1/sessions/{session['id']}/events").json()
    assert [e["kind"] for e in events] == ["adverse_event", "note"]
    assert events[0]["payload"] == {
        "description": "skin redness under electrode",
        "severity": "mild",
    }
    assert events[0]["actor_id"] == refs["practitioner_id"]


def test_sessions_list_pages(api: TestClient, refs: dict[str, int]) -> None:
    ids = [created(api, "/sessions", session_body(refs))["id"] for _ in range(3)]
    first = api.get("/api/v1/sessions", params={"limit": 2}).json()
    second = api.get("/api/v1/sessions", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [s["id"] for s in first["items"] + second["items"]] == ids
    assert second["next_cursor"] is None


def _channel(**overrides: Any) -> dict[str, Any]:
    return {"channel": 1, "pulse_width_us": 300, "frequency_hz": 35, **overrides}


BAD_SESSIONS: list[tuple[str, dict[str, Any], str]] = [
    (
        "both units",
        {"plan": ems_plan(channels=[_channel(amplitude_ua=30_000, amplitude_ma=30)])},
        "plan.channels[0]",
    ),
    ("no unit", {"plan": ems_plan(channels=[_channel()])}, "plan.channels[0]"),
    (
        "sub-µA in mA",
        {"plan": ems_plan(channels=[_channel(amplitude_ma=0.0005)])},
        "plan.channels[0]",
    ),
    (
        "unknown unit field",
        {"plan": ems_plan(channels=[_channel(amplitude_a=0.03)])},
        "plan.channels[0]",
    ),
    (
        "negative area",
        {"plan": ems_plan(electrode={"body_site": "calf", "area_cm2": -5})},
        "plan.electrode.area_cm2",
    ),
    (
        "zero area",
        {"plan": ems_plan(electrode={"body_site": "calf", "area_cm2": 0})},
        "plan.electrode.area_cm2",
    ),
    ("unknown modality", {"plan": ems_plan(modality="tens")}, "plan.modality"),
    (
        "unknown site",
        {"plan": ems_plan(electrode={"body_site": "elbowish", "area_cm2": 5})},
        "plan.electrode.body_site",
    ),
    ("end before start", {"ended_at": "2026-11-20T08:59:00+01:00"}, "ended_at"),
    ("naive timestamp", {"started_at": "2026-11-20T09:00:00"}, "started_at"),
    (
        "duplicate channel",
        {"plan": ems_plan(channels=[_channel(amplitude_ma=5), _channel(amplitude_ma=6)])},
        "plan",
    ),
    ("unknown client", {"client_id": 9999}, "client_id"),
    ("unknown device", {"device_id": 9999}, "device_id"),
    ("unknown practitioner", {"practitioner_id": 9999}, "practitioner_id"),
    ("unknown program", {"program_id": 9999}, "program_id"),
    ("huge id", {"client_id": 2**40}, "client_id"),
    ("nul in notes", {"notes": "a\u0000b"}, "notes"),
    (
        "duty cycle half given",
        {"plan": ems_plan(channels=[_channel(amplitude_ma=5, on_time_s=5)])},
        "plan.channels[0]",
    ),
]


@pytest.mark.parametrize(
    ("case", "overrides", "field"), BAD_SESSIONS, ids=[c[0] for c in BAD_SESSIONS]
)
def test_bad_session_input_is_422_naming_the_field_and_stores_nothing(
    api: TestClient, refs: dict[str, int], case: str, overrides: dict[str, Any], field: str
) -> None:
    problem = assert_problem(
        api.post("/api/v1/sessions", json=session_body(refs, **overrides)), 422, field
    )
    assert problem["type"] == "/problems/validation"
    assert problem["errors"][0]["reason"]
    assert api.get("/api/v1/sessions").json()["items"] == []


def test_program_of_the_other_modality_is_refused(api: TestClient, refs: dict[str, int]) -> None:
    program = created(
        api,
        "/programs",
        {
            "name": "Facial microcurrent",
            "modality": "microcurrent",
            "duration_s": 1800,
            "channels": [
                {"channel": 1, "amplitude_ua": 200, "pulse_width_us": 250_000, "frequency_hz": 0.5}
            ],
        },
    )
    response = api.post("/api/v1/sessions", json=session_body(refs, program_id=program["id"]))
    assert_problem(response, 422, "plan.modality")


def test_program_name_is_kept_from_the_program(api: TestClient, refs: dict[str, int]) -> None:
    program = created(
        api,
        "/programs",
        {"name": "Quads", "modality": "ems", "duration_s": 900, "channels": ems_plan()["channels"]},
    )
    session = created(api, "/sessions", session_body(refs, program_id=program["id"]))
    assert session["plan"]["program_name"] == "Quads"
    assert session["program_id"] == program["id"]
