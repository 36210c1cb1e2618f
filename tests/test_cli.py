"""The command line: its commands exist, and the database commands act on the configured database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionlog.analytics.day_summary import pending_keys
from sessionlog.cli import app
from sessionlog.store import migrations
from sessionlog.store.database import make_engine
from tests.rows import insert_session

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "db"):
        assert command in result.output
    db_help = runner.invoke(app, ["db", "--help"])
    assert "upgrade" in db_help.output
    assert "current" in db_help.output


def test_db_upgrade_then_current(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", url)

    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 0
    assert "current: empty" in before.output
    assert "needs `sessionlog db upgrade`" in before.output

    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    engine = make_engine(url)
    assert migrations.current_revision(engine) == migrations.head_revision(engine)
    engine.dispose()

    after = runner.invoke(app, ["db", "current"])
    assert "up to date" in after.output


def test_db_refresh_summary_rebuilds_the_marked_days(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'summary.sqlite3'}"
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", url)
    engine = make_engine(url)
    migrations.upgrade(engine)
    insert_session(engine)  # its (day, modality) key is marked for the summary
    with engine.connect() as connection:
        assert pending_keys(connection) == 1

    first = runner.invoke(app, ["db", "refresh-summary"])
    second = runner.invoke(app, ["db", "refresh-summary"])

    with engine.connect() as connection:
        assert pending_keys(connection) == 0
    engine.dispose()
    assert first.exit_code == 0, first.output
    assert "1 days rebuilt in 1 transactions" in first.output
    assert "0 days rebuilt" in second.output


def test_serve_refuses_an_unmigrated_named_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", f"sqlite:///{tmp_path / 'stale.sqlite3'}")
    result = runner.invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert "sessionlog db upgrade" in result.output


def test_users_create_and_keys_create_make_working_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from sessionlog.api.app import create_app
    from sessionlog.settings import Settings

    url = f"sqlite:///{tmp_path / 'admin.sqlite3'}"
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", url)
    monkeypatch.setenv("SESSIONLOG_AUTO_MIGRATE", "true")
    monkeypatch.setenv("SESSIONLOG_DATA_DIR", str(tmp_path))
    made = runner.invoke(
        app, ["users", "create", "--username", "root", "--role", "admin", "--generate-password"]
    )
    assert made.exit_code == 0, made.output
    password = made.output.split("password (shown once): ")[1].strip()
    station = runner.invoke(
        app, ["users", "create", "--username", "room1", "--role", "practitioner", "--no-password"]
    )
    assert station.exit_code == 0, station.output
    key = runner.invoke(app, ["keys", "create", "--user", "room1", "--name", "room 1"])
    assert key.exit_code == 0, key.output
    api_key = key.output.split("key (shown once): ")[1].strip()
    duplicate = runner.invoke(
        app, ["users", "create", "--username", "root", "--role", "admin", "--generate-password"]
    )
    assert duplicate.exit_code == 1

    with TestClient(create_app(Settings())) as client:
        signed_in = client.post(
            "/api/v1/auth/token", data={"username": "root", "password": password}
        )
        assert signed_in.status_code == 200
        assert (
            client.get("/api/v1/auth/me", headers={"X-API-Key": api_key}).json()["username"]
            == "room1"
        )
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    revoked = runner.invoke(app, ["keys", "revoke", key.output.split()[1]])
    assert revoked.exit_code == 0, revoked.output
