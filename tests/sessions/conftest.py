"""Fixtures for live sessions: the app on a fresh database, people and a connected simulated device."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import created


def live_plan(**overrides: Any) -> dict[str, Any]:
    channel = {"channel": 1, "amplitude_ma": 20, "pulse_width_us": 300, "frequency_hz": 35}
    channel.update(overrides.pop("channel", {}))
    plan: dict[str, Any] = {
        "modality": "ems",
        "duration_s": 30,
        "electrode": {"body_site": "calf", "area_cm2": 50},
        "channels": [channel],
    }
    plan.update(overrides)
    return plan


@pytest.fixture
def people(api: TestClient) -> dict[str, int]:
    user = created(
        api, "/users", {"username": "pia", "display_name": "Pia", "role": "practitioner"}
    )
    client = created(api, "/clients", {"code": "C-LIVE"})
    return {"practitioner_id": user["id"], "client_id": client["id"]}


def connect(api: TestClient, query: str = "channels=2&seed=4") -> int:
    response = api.post(
        "/api/v1/connections", json={"driver": "simulated", "url": f"sim://?{query}"}
    )
    assert response.status_code == 201, response.text
    device_id: int = response.json()["device"]["id"]
    return device_id


def emulator(api: TestClient, device_id: int) -> Any:
    manager = api.app.state.live_sessions  # type: ignore[attr-defined]
    return manager.connection(device_id).driver.transport.port.emulator


def create_session(api: TestClient, people: dict[str, int], device_id: int, **plan: Any) -> int:
    response = api.post(
        "/api/v1/sessions/live", json={**people, "device_id": device_id, "plan": live_plan(**plan)}
    )
    assert response.status_code == 201, response.text
    session_id: int = response.json()["session_id"]
    return session_id
