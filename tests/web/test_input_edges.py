"""Page input at the edges of what the store can hold: a NUL in the sign-in form is an ordinary
failed sign-in, and the client search refuses control characters and matches ``%`` and ``_``
literally. Runs on SQLite and, when configured, on PostgreSQL (which refuses NUL in any query)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from sessionlog.store.models import AuditEvent
from tests.api.conftest import assert_problem
from tests.web.conftest import ORIGIN, PASSWORD, sign_in


def refused_sign_ins(web: TestClient) -> int:
    with Session(web.app.state.engine) as db:  # type: ignore[attr-defined]
        statement = select(func.count()).where(AuditEvent.action == "sign_in_refused")
        return db.exec(statement).one()


def test_a_username_with_nul_is_refused_on_the_form_and_audited(
    web: TestClient, accounts: dict[str, int]
) -> None:
    response = web.post(
        "/app/sign-in",
        data={"username": "practitioner\x00", "password": PASSWORD, "next": "/app/"},
        headers=ORIGIN,
    )
    assert response.status_code == 401
    assert "unknown user or wrong password" in response.text
    assert "set-cookie" not in response.headers
    assert refused_sign_ins(web) == 1


def test_client_search_with_a_control_character_is_422_naming_q(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "practitioner")
    for term in ("a\x00", "C\x0b1", "C-1\n"):
        assert_problem(web.get("/app/clients", params={"q": term}), 422, "q")


def test_client_search_matches_percent_and_underscore_literally(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "practitioner")
    for code in ("C_1", "CX1", "D-2"):
        created = web.post("/api/v1/clients", json={"code": code}, headers=ORIGIN)
        assert created.status_code == 201, created.text
    underscore = web.get("/app/clients", params={"q": "C_1"})
    assert underscore.status_code == 200
    assert "C_1" in underscore.text
    assert "CX1" not in underscore.text
    percent = web.get("/app/clients", params={"q": "%"})
    assert percent.status_code == 200
    assert "No client matches" in percent.text
    everyone = web.get("/app/clients", params={"q": "  "})
    assert all(code in everyone.text for code in ("C_1", "CX1", "D-2"))
