"""Asking for a scope the role does not grant is the OAuth2 error `invalid_scope`, not a token with
fewer scopes than asked for."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem
from tests.conftest import create_user

PASSWORD = "correct horse battery"


@pytest.fixture
def practitioner(anonymous: TestClient) -> int:
    return create_user(anonymous.app.state.engine, "pia", "practitioner", PASSWORD)  # type: ignore[attr-defined]


def ask(anonymous: TestClient, scope: str) -> object:
    return anonymous.post(
        "/api/v1/auth/token", data={"username": "pia", "password": PASSWORD, "scope": scope}
    )


@pytest.mark.parametrize(
    ("scope", "refused"),
    [
        ("users:write", ["users:write"]),
        ("clients:read users:write audit:read", ["audit:read", "users:write"]),
        ("clients:read no:such", ["no:such"]),
    ],
)
def test_a_scope_beyond_the_role_is_invalid_scope(
    anonymous: TestClient, practitioner: int, scope: str, refused: list[str]
) -> None:
    response = ask(anonymous, scope)
    problem = assert_problem(response, 400, "scope")
    assert problem["error"] == "invalid_scope"
    for name in refused:
        assert name in problem["error_description"]
        assert any(name in e["reason"] for e in problem["errors"] if e["field"] == "scope")
    assert "access_token" not in problem
    assert len(problem["errors"]) == len(refused)


def test_the_refusal_is_audited(anonymous: TestClient, practitioner: int) -> None:
    assert ask(anonymous, "users:write").status_code == 400  # type: ignore[attr-defined]
    engine = anonymous.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT action, reason FROM audit_event ORDER BY id"
        ).all()
    assert ("sign_in_refused", "invalid_scope: users:write") in [tuple(r) for r in rows]
    assert "sign_in" not in [r[0] for r in rows]


def test_a_granted_scope_still_narrows_the_token(anonymous: TestClient, practitioner: int) -> None:
    response = ask(anonymous, "clients:read")
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert response.json()["scope"] == "clients:read"  # type: ignore[attr-defined]


def test_the_400_is_documented(anonymous: TestClient) -> None:
    operation = anonymous.get("/api/v1/openapi.json").json()["paths"]["/api/v1/auth/token"]["post"]
    assert "invalid_scope" in operation["responses"]["400"]["description"]
