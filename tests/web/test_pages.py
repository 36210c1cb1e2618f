"""The page routes without a browser: sign-in, redirects, scopes, forgery checks and the audit trail."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from sessionlog.store.models import AuditEvent
from tests.web.conftest import ORIGIN, PASSWORD, sign_in


def audit_events(web: TestClient, action: str, resource: str) -> list[Any]:
    with Session(web.app.state.engine) as db:  # type: ignore[attr-defined]
        return list(
            db.exec(
                select(AuditEvent).where(
                    AuditEvent.action == action, AuditEvent.resource == resource
                )
            ).all()
        )


def make_client(web: TestClient, code: str, **extra: Any) -> int:
    response = web.post("/api/v1/clients", json={"code": code, **extra}, headers=ORIGIN)
    assert response.status_code == 201, response.text
    client_id: int = response.json()["id"]
    return client_id


def test_pages_redirect_to_sign_in_with_the_page_to_return_to(web: TestClient) -> None:
    for path in ("/app/", "/app/clients", "/app/sessions/new", "/app/overview"):
        response = web.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/app/sign-in?next={path}"


def test_root_leads_to_the_pages(web: TestClient) -> None:
    response = web.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/app/"


def test_sign_in_page_has_labelled_fields(web: TestClient) -> None:
    page = web.get("/app/sign-in").text
    assert '<label for="username">' in page
    assert '<label for="password">' in page
    assert 'type="password"' in page


def test_sign_in_sets_an_httponly_strict_cookie_and_lands_on_today(
    web: TestClient, accounts: dict[str, int]
) -> None:
    response = web.post(
        "/app/sign-in",
        data={"username": "practitioner", "password": PASSWORD, "next": "/app/"},
        headers=ORIGIN,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/app/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("sessionlog_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    today = web.get("/app/")
    assert today.status_code == 200
    assert "Connected devices" in today.text


def test_analyst_lands_on_the_overview(web: TestClient, accounts: dict[str, int]) -> None:
    response = web.post(
        "/app/sign-in",
        data={"username": "analyst", "password": PASSWORD, "next": "/app/"},
        headers=ORIGIN,
    )
    assert response.headers["location"] == "/app/overview"


def test_wrong_password_is_refused_on_the_form_and_audited(
    web: TestClient, accounts: dict[str, int]
) -> None:
    response = web.post(
        "/app/sign-in",
        data={"username": "practitioner", "password": "not the password", "next": "/app/"},
        headers=ORIGIN,
    )
    assert response.status_code == 401
    assert "unknown user or wrong password" in response.text
    assert "set-cookie" not in response.headers
    assert len(audit_events(web, "sign_in_refused", "user")) == 1


def test_sign_in_from_another_site_is_refused(web: TestClient, accounts: dict[str, int]) -> None:
    response = web.post(
        "/app/sign-in",
        data={"username": "practitioner", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_sign_in_never_redirects_to_another_site(web: TestClient, accounts: dict[str, int]) -> None:
    response = web.post(
        "/app/sign-in",
        data={"username": "practitioner", "password": PASSWORD, "next": "//evil.example/x"},
        headers=ORIGIN,
    )
    assert response.headers["location"] == "/app/"


def test_cookie_signs_in_api_calls_with_the_roles_scopes(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "practitioner")
    me = web.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["username"] == "practitioner"
    assert "sessions:run" in me.json()["scopes"]
    # The practitioner role has no analytics scope: the API refuses it the same way as with a token.
    assert web.get("/api/v1/users").status_code == 403


def test_cookie_state_change_from_another_origin_is_refused(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "practitioner")
    body = {"code": "C-CSRF"}
    forged = web.post("/api/v1/clients", json=body, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert forged.headers["content-type"].startswith("application/problem+json")
    missing = web.post("/api/v1/clients", json=body)
    assert missing.status_code == 403
    same_site = web.post("/api/v1/clients", json=body, headers=ORIGIN)
    assert same_site.status_code == 201


def test_an_explicit_bearer_token_is_not_overridden_by_the_cookie(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "practitioner")
    response = web.get("/api/v1/auth/me", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


def test_role_without_the_page_scope_gets_a_not_allowed_page(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "integrator")
    response = web.get("/app/clients")
    assert response.status_code == 403
    assert "does not grant clients:read" in response.text
    assert web.get("/app/").status_code == 200


def test_sign_out_clears_the_cookie(web: TestClient, accounts: dict[str, int]) -> None:
    sign_in(web, "practitioner")
    response = web.post("/app/sign-out", headers=ORIGIN)
    assert response.status_code == 303
    assert 'sessionlog_session=""' in response.headers["set-cookie"]
    web.cookies.clear()
    assert web.get("/app/").status_code == 303


def test_refresh_issues_a_new_token_for_the_same_user(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "practitioner")
    before = web.cookies.get("sessionlog_session")
    response = web.post("/app/session/refresh", headers=ORIGIN)
    assert response.status_code == 204
    after = response.cookies.get("sessionlog_session")
    assert after
    assert after != before
    assert web.get("/api/v1/auth/me").json()["username"] == "practitioner"


def test_client_search_and_page_show_screening_and_are_audited(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "practitioner")
    wanted = make_client(web, "C-0042", contraindications=["pregnancy"])
    make_client(web, "X-0007")
    reads_before = len(audit_events(web, "read", "client"))
    found = web.get("/app/clients", params={"q": "0042"})
    assert found.status_code == 200
    assert "C-0042" in found.text
    assert "X-0007" not in found.text
    page = web.get(f"/app/clients/{wanted}")
    assert page.status_code == 200
    assert "pregnancy" in page.text
    reads = audit_events(web, "read", "client")
    assert len(reads) == reads_before + 2
    assert str(reads[-1].resource_id) == str(wanted)


def test_unknown_client_page_is_not_found(web: TestClient, accounts: dict[str, int]) -> None:
    sign_in(web, "practitioner")
    assert web.get("/app/clients/999").status_code == 404


def test_client_code_is_escaped_in_pages(web: TestClient, accounts: dict[str, int]) -> None:
    sign_in(web, "practitioner")
    response = web.post(
        "/api/v1/clients",
        json={"code": "C-1", "notes": "<script>alert(1)</script>"},
        headers=ORIGIN,
    )
    client_id = response.json()["id"]
    page = web.get(f"/app/clients/{client_id}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_new_session_page_lists_connected_devices_and_clients(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "practitioner")
    make_client(web, "C-NEW")
    connected = web.post(
        "/api/v1/connections",
        json={"driver": "simulated", "url": "sim://?channels=2&seed=3"},
        headers=ORIGIN,
    )
    assert connected.status_code == 201, connected.text
    page = web.get("/app/sessions/new").text
    assert "C-NEW" in page
    assert f'value="{connected.json()["device"]["id"]}"' in page
    assert '<label for="area">Electrode area (cm² each)</label>' in page


def test_analyst_cannot_open_the_new_session_page(
    web: TestClient, accounts: dict[str, int]
) -> None:
    sign_in(web, "analyst")
    assert web.get("/app/sessions/new").status_code == 403


def test_overview_is_for_analysts(web: TestClient, accounts: dict[str, int]) -> None:
    sign_in(web, "analyst")
    page = web.get("/app/overview")
    assert page.status_code == 200
    assert 'id="overview-chart"' in page.text
    assert "/api/v1/analytics/export?format=csv" in page.text


def test_static_files_are_served(web: TestClient) -> None:
    for name in ("app.css", "common.js", "live.js", "new_session.js"):
        assert web.get(f"/app/static/{name}").status_code == 200
