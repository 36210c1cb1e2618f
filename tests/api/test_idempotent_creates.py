"""Every creating POST honours Idempotency-Key: a retry gets the first answer and creates nothing.

Notes, adverse events, corrections and removals used to ignore the header (a retried adverse
event was stored twice); these go through the real routes and count what was stored.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, created, session_body


def events_of(api: TestClient, session_id: int, kind: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/sessions/{session_id}/events")
    assert response.status_code == 200, response.text
    return [e for e in response.json() if e["kind"] == kind]


@pytest.mark.parametrize(
    ("route", "body", "kind"),
    [
        ("notes", {"text": "client comfortable"}, "note"),
        ("adverse-events", {"description": "skin redness", "severity": "mild"}, "adverse_event"),
    ],
)
def test_a_retried_event_is_stored_once(
    api: TestClient, refs: dict[str, int], route: str, body: dict[str, Any], kind: str
) -> None:
    session = created(api, "/sessions", session_body(refs))
    path = f"/api/v1/sessions/{session['id']}/{route}"
    headers = {"Idempotency-Key": f"{route}-1"}
    first = api.post(path, json=body, headers=headers)
    again = api.post(path, json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(events_of(api, session["id"], kind)) == 1
    # Another key is another event; the same key with another body is refused, storing nothing.
    assert api.post(path, json=body, headers={"Idempotency-Key": f"{route}-2"}).status_code == 201
    other = api.post(path, json={**body, "occurred_at": "2026-11-20T09:10:00Z"}, headers=headers)
    assert_problem(other, 422, "Idempotency-Key")
    assert len(events_of(api, session["id"], kind)) == 2


def test_a_retried_correction_gets_the_first_answer_not_a_conflict(
    api: TestClient, refs: dict[str, int]
) -> None:
    session = created(api, "/sessions", session_body(refs))
    path = f"/api/v1/sessions/{session['id']}/corrections"
    body = {"reason": "wrong outcome", "outcome": "stopped early"}
    headers = {"Idempotency-Key": "correct-1"}
    first = api.post(path, json=body, headers=headers)
    again = api.post(path, json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (
        first.headers["Location"] == again.headers["Location"] == f"/sessions/{first.json()['id']}"
    )
    corrections = events_of(api, session["id"], "correction")
    assert len(corrections) == 1


def test_a_retried_removal_gets_the_first_answer(api: TestClient, refs: dict[str, int]) -> None:
    session = created(api, "/sessions", session_body(refs))
    path = f"/api/v1/sessions/{session['id']}/entered-in-error"
    headers = {"Idempotency-Key": "remove-1"}
    first = api.post(path, json={"reason": "wrong client"}, headers=headers)
    again = api.post(path, json={"reason": "wrong client"}, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "entered_in_error"
    assert len(events_of(api, session["id"], "entered_in_error")) == 1


def test_a_retried_key_creation_creates_no_second_key_and_shows_no_secret(
    api: TestClient, refs: dict[str, int]
) -> None:
    body = {"user_id": refs["practitioner_id"], "name": "room 2"}
    headers = {"Idempotency-Key": "key-1"}
    first = api.post("/api/v1/keys", json=body, headers=headers)
    assert first.status_code == 201, first.text
    secret = first.json()["key"]
    again = api.post("/api/v1/keys", json=body, headers=headers)
    problem = assert_problem(again, 409, "Idempotency-Key")
    assert f"API key {first.json()['id']}" in problem["detail"]
    assert secret not in again.text
    assert [k["id"] for k in api.get("/api/v1/keys").json()["items"]] == [first.json()["id"]]
    # The secret was stored nowhere, the idempotency records included.
    engine = api.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT response_body FROM idempotency_record").all()
    assert stored
    assert all(secret not in row[0] for row in stored)


def _live_people(api: TestClient) -> dict[str, int]:
    user = created(
        api, "/users", {"username": "pia", "display_name": "Pia", "role": "practitioner"}
    )
    client = created(api, "/clients", {"code": "C-LIVE"})
    return {"practitioner_id": user["id"], "client_id": client["id"]}


def test_live_creates_honour_the_key_too(api: TestClient) -> None:
    connect = {"driver": "simulated", "url": "sim://?channels=2&seed=4"}
    headers = {"Idempotency-Key": "connect-1"}
    first = api.post("/api/v1/connections", json=connect, headers=headers)
    assert first.status_code == 201, first.text
    again = api.post("/api/v1/connections", json=connect, headers=headers)
    assert again.status_code == 201, again.text  # without the key: 409, already connected
    assert again.headers["Idempotent-Replayed"] == "true"
    device_id = first.json()["device"]["id"]

    plan = {
        "modality": "ems",
        "duration_s": 30,
        "electrode": {"body_site": "calf", "area_cm2": 50},
        "channels": [{"channel": 1, "amplitude_ma": 20, "pulse_width_us": 300, "frequency_hz": 35}],
    }
    body = {**_live_people(api), "device_id": device_id, "plan": plan}
    headers = {"Idempotency-Key": "live-1"}
    first = api.post("/api/v1/sessions/live", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = api.post("/api/v1/sessions/live", json=body, headers=headers)
    assert again.status_code == 201, again.text  # without the key: 409, the device is busy
    session_id = first.json()["session_id"]
    assert again.json()["session_id"] == session_id

    path = f"/api/v1/sessions/{session_id}/live-notes"
    headers = {"Idempotency-Key": "live-note-1"}
    assert api.post(path, json={"text": "comfortable"}, headers=headers).status_code == 201
    assert api.post(path, json={"text": "comfortable"}, headers=headers).status_code == 201
    assert len(events_of(api, session_id, "note")) == 1


def test_every_creating_post_declares_the_header_in_openapi(api: TestClient) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    creating = [
        (path, operation)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if method == "post" and "201" in operation["responses"]
    ]
    assert len(creating) >= 12
    missing = [
        path
        for path, operation in creating
        if not any(
            p["in"] == "header" and p["name"] == "Idempotency-Key"
            for p in operation.get("parameters", [])
        )
    ]
    assert missing == []
