"""Creating POSTs with an Idempotency-Key: a retry returns the first answer and creates nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, session_body


def test_the_same_key_and_body_returns_the_first_result(api: TestClient) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = api.post("/api/v1/clients", json={"code": "C-I1"}, headers=headers)
    again = api.post("/api/v1/clients", json={"code": "C-I1"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert len(api.get("/api/v1/clients").json()["items"]) == 1


def test_the_same_key_with_another_body_is_422(api: TestClient) -> None:
    api.post("/api/v1/clients", json={"code": "C-I2"}, headers={"Idempotency-Key": "k-2"})
    other = api.post("/api/v1/clients", json={"code": "C-I3"}, headers={"Idempotency-Key": "k-2"})
    assert_problem(other, 422, "Idempotency-Key")
    assert [c["code"] for c in api.get("/api/v1/clients").json()["items"]] == ["C-I2"]


def test_recorded_sessions_are_idempotent_too(api: TestClient, refs: dict[str, int]) -> None:
    headers = {"Idempotency-Key": "session-retry"}
    first = api.post("/api/v1/sessions", json=session_body(refs), headers=headers)
    again = api.post("/api/v1/sessions", json=session_body(refs), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert len(api.get("/api/v1/sessions").json()["items"]) == 1


def test_without_a_key_a_repeated_create_is_not_replayed_but_refused_as_a_duplicate(
    api: TestClient,
) -> None:
    api.post(
        "/api/v1/programs",
        json={
            "name": "P1",
            "modality": "ems",
            "duration_s": 60,
            "channels": [
                {"channel": 1, "amplitude_ma": 5, "pulse_width_us": 200, "frequency_hz": 30}
            ],
        },
    )
    assert (
        api.post(
            "/api/v1/programs",
            json={
                "name": "P1",
                "modality": "ems",
                "duration_s": 60,
                "channels": [
                    {"channel": 1, "amplitude_ma": 5, "pulse_width_us": 200, "frequency_hz": 30}
                ],
            },
        ).status_code
        == 409
    )
