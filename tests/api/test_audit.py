"""The audit trail: every change and every access to client data, chained and tamper-evident."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from sessionlog.cli import app as cli
from sessionlog.store.audit import verify_chain
from sessionlog.store.database import session_scope
from tests.api.conftest import created


def audit_events(api: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/api/v1/audit", params={"limit": 200}).json()["items"]
    return items


def test_changes_and_client_reads_are_audited_with_who_and_before_after(api: TestClient) -> None:
    me = api.get("/api/v1/auth/me").json()["user_id"]
    client = created(api, "/clients", {"code": "C-A1", "notes": "first"})
    api.get(f"/api/v1/clients/{client['id']}")
    api.patch(
        f"/api/v1/clients/{client['id']}",
        json={"notes": "second"},
        headers={"If-Match": f'W/"{client["id"]}-1"'},
    )
    events = [e for e in audit_events(api) if e["resource"] == "client"]
    assert [e["action"] for e in events] == ["create", "read", "update"]
    assert all(e["actor_id"] == me for e in events)
    update = events[-1]
    assert update["before"]["notes"] == "first"
    assert update["after"]["notes"] == "second"
    assert update["resource_id"] == str(client["id"])


def test_user_audit_never_contains_the_password_hash(api: TestClient) -> None:
    created(
        api,
        "/users",
        {
            "username": "u-pw",
            "display_name": "U",
            "role": "analyst",
            "password": "long enough password",
        },
    )
    user_events = [e for e in audit_events(api) if e["resource"] == "user"]
    assert user_events
    assert all("password_hash" not in (e["after"] or {}) for e in user_events)


def test_the_chain_verifies_and_a_tampered_row_is_reported(api: TestClient, engine: Engine) -> None:
    for code in ("C-T1", "C-T2", "C-T3"):
        created(api, "/clients", {"code": code})
    assert api.get("/api/v1/audit/verify").json() == {
        "ok": True,
        "events_checked": len(audit_events(api)),
        "first_broken_id": None,
        "problem": None,
    }
    target = audit_events(api)[1]["id"]
    with engine.begin() as connection:
        _without_append_only_guard(connection, "audit_event")
        connection.execute(
            text("UPDATE audit_event SET reason = 'rewritten' WHERE id = :id"), {"id": target}
        )
    report = api.get("/api/v1/audit/verify").json()
    assert report["ok"] is False
    assert report["first_broken_id"] == target
    assert "changed" in report["problem"]
    result = CliRunner().invoke(
        cli,
        ["audit", "verify"],
        env={"SESSIONLOG_DATABASE_URL": str(engine.url.render_as_string(hide_password=False))},
    )
    assert result.exit_code == 1
    assert f"BROKEN at event {target}" in result.output


def test_a_removed_row_is_reported(api: TestClient, engine: Engine) -> None:
    for code in ("C-R1", "C-R2", "C-R3"):
        created(api, "/clients", {"code": code})
    removed = audit_events(api)[1]["id"]
    with engine.begin() as connection:
        _without_append_only_guard(connection, "audit_event")
        connection.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": removed})
    report = api.get("/api/v1/audit/verify").json()
    assert report["ok"] is False
    assert report["first_broken_id"] == removed + 1
    assert "removed" in report["problem"]


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_event SET reason = 'x'", "DELETE FROM audit_event"]
)
def test_the_database_refuses_to_change_audit_events(
    api: TestClient, engine: Engine, statement: str
) -> None:
    created(api, "/clients", {"code": "C-G1"})
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))


def test_concurrent_writers_keep_one_unbroken_chain(api: TestClient, engine: Engine) -> None:
    errors: list[BaseException] = []

    def write(prefix: str) -> None:
        try:
            for n in range(8):
                response = api.post("/api/v1/clients", json={"code": f"{prefix}-{n}"})
                assert response.status_code == 201, response.text
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(f"W{t}",)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.ok, report
    assert report.events_checked >= 32


def _without_append_only_guard(connection: Any, table: str) -> None:
    """What an attacker with database access would do first: take the triggers off."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    else:
        connection.exec_driver_sql(f"DROP TRIGGER {table}_no_update")
        connection.exec_driver_sql(f"DROP TRIGGER {table}_no_delete")
