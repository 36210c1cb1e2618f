"""Every route × every role, against the declared access table (docs/security.md).

Each role signs in for real (password flow); each operation of the OpenAPI document is then called
with an empty body and id 1. A denied role must get 403; an allowed role must get past
authorisation (anything but 401/403: a 404 or 422 for the dummy input is fine). A route missing
from the table fails the test, so a new route cannot ship without a declared access rule.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import create_user

P, G, A, D = "practitioner", "integrator", "analyst", "admin"
EVERYONE = frozenset({P, G, A, D})
PUBLIC = "public"

ACCESS: dict[str, frozenset[str] | str] = {
    "GET /api/v1/health": PUBLIC,
    "POST /api/v1/auth/token": PUBLIC,
    "GET /api/v1/auth/me": EVERYONE,
    "POST /api/v1/users": frozenset({D}),
    "GET /api/v1/users": frozenset({D}),
    "GET /api/v1/users/{record_id}": frozenset({D}),
    "PATCH /api/v1/users/{record_id}": frozenset({D}),
    "POST /api/v1/keys": frozenset({D}),
    "GET /api/v1/keys": frozenset({D}),
    "DELETE /api/v1/keys/{key_id}": frozenset({D}),
    "GET /api/v1/audit": frozenset({D}),
    "GET /api/v1/audit/verify": frozenset({D}),
    "POST /api/v1/clients": frozenset({P}),
    "GET /api/v1/clients": frozenset({P, A}),
    "GET /api/v1/clients/{record_id}": frozenset({P, A}),
    "PATCH /api/v1/clients/{record_id}": frozenset({P}),
    "POST /api/v1/devices": frozenset({G}),
    "GET /api/v1/devices": EVERYONE,
    "GET /api/v1/devices/{record_id}": EVERYONE,
    "PATCH /api/v1/devices/{record_id}": frozenset({G}),
    "POST /api/v1/programs": frozenset({P}),
    "GET /api/v1/programs": frozenset({P, G, A}),
    "GET /api/v1/programs/{record_id}": frozenset({P, G, A}),
    "PATCH /api/v1/programs/{record_id}": frozenset({P}),
    "POST /api/v1/sessions": frozenset({P}),
    "GET /api/v1/sessions": frozenset({P, A}),
    "GET /api/v1/sessions/{session_id}": frozenset({P, A}),
    "GET /api/v1/sessions/{session_id}/events": frozenset({P, A}),
    "POST /api/v1/sessions/{session_id}/corrections": frozenset({P}),
    "POST /api/v1/sessions/{session_id}/entered-in-error": frozenset({P}),
    "POST /api/v1/sessions/{session_id}/notes": frozenset({P}),
    "POST /api/v1/sessions/{session_id}/adverse-events": frozenset({P}),
    "POST /api/v1/limits/check": frozenset({P, G}),
    "GET /api/v1/connections": EVERYONE,
    "POST /api/v1/connections": frozenset({P, G}),
    "DELETE /api/v1/connections/{device_id}": frozenset({P, G}),
    "POST /api/v1/sessions/live": frozenset({P}),
    "GET /api/v1/sessions/{session_id}/live": frozenset({P, A}),
    "POST /api/v1/sessions/{session_id}/start": frozenset({P}),
    "POST /api/v1/sessions/{session_id}/pause": frozenset({P}),
    "POST /api/v1/sessions/{session_id}/resume": frozenset({P}),
    "POST /api/v1/sessions/{session_id}/stop": frozenset({P}),
    "POST /api/v1/sessions/{session_id}/emergency-stop": frozenset({P}),
    "POST /api/v1/sessions/{session_id}/intensity": frozenset({P}),
    "POST /api/v1/sessions/{session_id}/live-notes": frozenset({P}),
    "GET /api/v1/sessions/{session_id}/stream": frozenset({P, A}),
    "GET /api/v1/sessions/{session_id}/telemetry": frozenset({P, A}),
    "GET /api/v1/analytics/summary": frozenset({A}),
    "GET /api/v1/analytics/export": frozenset({A}),
}
PASSWORD = "role-matrix-password"


def _operations(client: TestClient) -> list[tuple[str, str]]:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() for method in operations]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_route_and_role_against_the_declared_table(anonymous: TestClient) -> None:
    engine = anonymous.app.state.engine  # type: ignore[attr-defined]
    tokens = {}
    for role in (P, G, A, D):
        create_user(engine, f"matrix-{role}", role, PASSWORD)
        signed_in = anonymous.post(
            "/api/v1/auth/token", data={"username": f"matrix-{role}", "password": PASSWORD}
        )
        tokens[role] = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}

    operations = _operations(anonymous)
    undeclared = [f"{m} {p}" for m, p in operations if f"{m} {p}" not in ACCESS]
    assert not undeclared, f"routes without a declared access rule: {undeclared}"
    wrong: list[str] = []
    for method, path in operations:
        rule = ACCESS[f"{method} {path}"]
        url = path.replace("{record_id}", "1").replace("{session_id}", "1").replace("{key_id}", "1")
        url = url.replace("{device_id}", "1")
        if rule == PUBLIC:
            continue
        anonymous_status = anonymous.request(method, url, json={}).status_code
        if anonymous_status != 401:
            wrong.append(f"{method} {path}: anonymous got {anonymous_status}")
        for role, headers in tokens.items():
            status = anonymous.request(method, url, json={}, headers=headers).status_code
            allowed = role in rule
            if allowed and status in (401, 403):
                wrong.append(f"{method} {path}: {role} should be allowed, got {status}")
            if not allowed and status != 403:
                wrong.append(f"{method} {path}: {role} should be refused (403), got {status}")
    assert not wrong, "\n".join(wrong)
