"""Helpers that create the records a session refers to, through the API itself."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

PROBLEM_JSON = "application/problem+json"


def created(api: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/api/v1{path}", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def ems_plan(**overrides: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "modality": "ems",
        "duration_s": 1200,
        "electrode": {"body_site": "thigh_anterior", "side": "left", "area_cm2": 50},
        "channels": [
            {"channel": 1, "amplitude_ma": 30, "pulse_width_us": 300, "frequency_hz": 35},
        ],
    }
    plan.update(overrides)
    return plan


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"]
    if field is not None:
        fields = [error["field"] for error in problem["errors"]]
        assert any(
            f == field or f.startswith(f"{field}.") or f.startswith(f"{field}[") for f in fields
        ), fields
    return problem


@pytest.fixture
def refs(api: TestClient) -> dict[str, int]:
    """One practitioner, client and device, for tests that record sessions."""
    user = created(
        api, "/users", {"username": "anna", "display_name": "Anna P.", "role": "practitioner"}
    )
    client = created(api, "/clients", {"code": "C-0001"})
    device = created(
        api, "/devices", {"driver": "simulated", "serial_number": "SIM-1", "model": "Reference"}
    )
    return {"practitioner_id": user["id"], "client_id": client["id"], "device_id": device["id"]}


def session_body(refs: dict[str, int], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        **refs,
        "plan": ems_plan(),
        "started_at": "2026-11-20T09:00:00+01:00",
        "ended_at": "2026-11-20T09:20:00+01:00",
        "notes": "quadriceps strengthening",
        "outcome": "tolerated well",
    }
    body.update(overrides)
    return body
