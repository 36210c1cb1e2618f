"""Signing in, tokens, API keys and their refusal cases, through the real routes."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, created
from tests.conftest import create_user

PASSWORD = "correct horse battery"


def sign_in(
    client: TestClient, username: str, password: str = PASSWORD, scope: str = ""
) -> dict[str, str]:
    response = client.post(
        "/api/v1/auth/token", data={"username": username, "password": password, "scope": scope}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def practitioner(anonymous: TestClient) -> int:
    return create_user(anonymous.app.state.engine, "pia", "practitioner", PASSWORD)  # type: ignore[attr-defined]


def test_every_route_but_health_and_docs_needs_credentials(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/health").status_code == 200
    assert anonymous.get("/api/v1/openapi.json").status_code == 200
    assert anonymous.get("/api/v1/docs").status_code == 200
    problem = assert_problem(anonymous.get("/api/v1/clients"), 401)
    assert "bearer token" in problem["detail"]
    assert anonymous.get("/api/v1/clients").headers["WWW-Authenticate"] == "Bearer"


def test_sign_in_issues_a_token_with_the_roles_scopes(
    anonymous: TestClient, practitioner: int
) -> None:
    headers = sign_in(anonymous, "pia")
    me = anonymous.get("/api/v1/auth/me", headers=headers).json()
    assert me["user_id"] == practitioner
    assert me["role"] == "practitioner"
    assert "sessions:run" in me["scopes"]
    assert "users:write" not in me["scopes"]
    assert (
        anonymous.post("/api/v1/clients", json={"code": "C-1"}, headers=headers).status_code == 201
    )


def test_a_narrower_scope_can_be_asked_for_and_a_wider_one_is_refused(
    anonymous: TestClient, practitioner: int
) -> None:
    headers = sign_in(anonymous, "pia", scope="clients:read")
    assert anonymous.get("/api/v1/auth/me", headers=headers).json()["scopes"] == ["clients:read"]
    assert_problem(anonymous.post("/api/v1/clients", json={"code": "C-1"}, headers=headers), 403)
    wider = anonymous.post(
        "/api/v1/auth/token",
        data={"username": "pia", "password": PASSWORD, "scope": "clients:read users:write"},
    )
    assert assert_problem(wider, 400, "scope")["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("username", "password"), [("pia", "wrong password!"), ("nobody", PASSWORD)]
)
def test_wrong_password_or_unknown_user_is_the_same_401(
    anonymous: TestClient, practitioner: int, username: str, password: str
) -> None:
    response = anonymous.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    problem = assert_problem(response, 401)
    assert problem["detail"] == "unknown user or wrong password"


def test_repeated_failures_are_rate_limited_even_with_the_right_password(
    anonymous: TestClient, practitioner: int
) -> None:
    for _ in range(5):
        anonymous.post(
            "/api/v1/auth/token", data={"username": "pia", "password": "wrong password!"}
        )
    limited = anonymous.post("/api/v1/auth/token", data={"username": "pia", "password": PASSWORD})
    assert_problem(limited, 429)
    assert int(limited.headers["Retry-After"]) > 0


def test_a_role_change_or_deactivation_ends_existing_tokens(
    api: TestClient, anonymous: TestClient, practitioner: int
) -> None:
    headers = sign_in(anonymous, "pia")
    user = api.get(f"/api/v1/users/{practitioner}")
    api.patch(
        f"/api/v1/users/{practitioner}",
        json={"role": "analyst"},
        headers={"If-Match": user.headers["ETag"]},
    )
    problem = assert_problem(api.get("/api/v1/auth/me", headers=headers), 401)
    assert "role changed" in problem["detail"]
    fresh = sign_in(anonymous, "pia")
    user = api.get(f"/api/v1/users/{practitioner}")
    api.patch(
        f"/api/v1/users/{practitioner}",
        json={"active": False},
        headers={"If-Match": user.headers["ETag"]},
    )
    assert_problem(api.get("/api/v1/auth/me", headers=fresh), 401)


def test_forged_and_garbage_tokens_are_401(anonymous: TestClient, practitioner: int) -> None:
    token = sign_in(anonymous, "pia")["Authorization"].removeprefix("Bearer ")
    header, payload, signature = token.split(".")
    # The first character carries six whole bits of the signature (the last one partly padding,
    # which a decoder may ignore), so changing it always changes the signature.
    forged = f"{header}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    for bad in (forged, "garbage", ""):
        response = anonymous.get("/api/v1/clients", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401


def test_api_keys_are_shown_once_work_as_their_user_and_can_be_revoked(
    api: TestClient, anonymous: TestClient
) -> None:
    station = created(
        api, "/users", {"username": "room2", "display_name": "Room 2", "role": "practitioner"}
    )
    key = created(api, "/keys", {"user_id": station["id"], "name": "room 2 station"})
    assert key["key"].startswith(f"slk_{key['id']}_")
    listed = api.get("/api/v1/keys").json()["items"]
    assert "key" not in listed[0]
    headers = {"X-API-Key": key["key"]}
    me = anonymous.get("/api/v1/auth/me", headers=headers).json()
    assert me["username"] == "room2"
    assert me["via"] == f"api_key:{key['id']}"
    assert (
        anonymous.post("/api/v1/clients", json={"code": "C-9"}, headers=headers).status_code == 201
    )
    assert api.delete(f"/api/v1/keys/{key['id']}").status_code == 204
    problem = assert_problem(anonymous.get("/api/v1/auth/me", headers=headers), 401)
    assert "revoked" in problem["detail"]
    assert_problem(anonymous.get("/api/v1/auth/me", headers={"X-API-Key": key["key"] + "x"}), 401)


def test_short_passwords_are_refused(api: TestClient) -> None:
    body = {"username": "x1", "display_name": "X", "role": "analyst", "password": "short"}
    assert_problem(api.post("/api/v1/users", json=body), 422, "password")


def test_no_secret_or_client_identity_reaches_the_logs(
    anonymous: TestClient, practitioner: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = sign_in(anonymous, "pia")
    anonymous.post("/api/v1/auth/token", data={"username": "pia", "password": "wrong password!"})
    anonymous.post("/api/v1/clients", json={"code": "CLIENT-SECRET-CODE"}, headers=headers)
    logged = caplog.text
    assert PASSWORD not in logged
    assert "wrong password!" not in logged
    assert headers["Authorization"].removeprefix("Bearer ") not in logged
    assert "CLIENT-SECRET-CODE" not in logged


def test_cors_is_closed_by_default(anonymous: TestClient) -> None:
    response = anonymous.options(
        "/api/v1/clients",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers
