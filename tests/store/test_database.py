"""Engine configuration and the column types every table relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, StatementError
from sqlmodel import Session, select

from sessionlog.store.database import make_engine, normalise_url, session_scope
from sessionlog.store.models import Client, SessionEvent


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/nested/folder/db.sqlite3")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_plain_postgresql_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert normalise_url("postgres://u@h/db").startswith("postgresql+psycopg://")
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_timestamps_come_back_as_aware_utc(engine: Engine) -> None:
    local = datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(engine) as db:
        db.add(Client(code="c-1", created_at=local, updated_at=local))
    with Session(engine) as db:
        stored = db.exec(select(Client)).one()
    assert stored.created_at.tzinfo is not None
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.created_at == local
    assert stored.created_at.hour == 8


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    naive = datetime(2026, 3, 1, 10, 30)
    with pytest.raises(StatementError, match="naive datetime"), session_scope(engine) as db:
        db.add(Client(code="c-2", created_at=naive, updated_at=naive))


def test_unknown_reference_is_refused_by_the_database(engine: Engine) -> None:
    with pytest.raises(DBAPIError), session_scope(engine) as db:
        db.add(SessionEvent(session_id=999, kind="note", occurred_at=datetime.now(UTC)))


def _insert_event(engine: Engine) -> int:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO app_user (username, display_name, role, active, created_at, "
                "updated_at, version) VALUES ('p', 'P', 'practitioner', true, :t, :t, 1)"
            ),
            {"t": datetime.now(UTC)},
        )
        connection.execute(
            text(
                "INSERT INTO client (code, contraindications, created_at, updated_at, version) "
                "VALUES ('c', '[]', :t, :t, 1)"
            ),
            {"t": datetime.now(UTC)},
        )
        connection.execute(
            text(
                "INSERT INTO device (driver, serial_number, model, created_at, updated_at, version) "
                "VALUES ('simulated', 'S1', 'Sim', :t, :t, 1)"
            ),
            {"t": datetime.now(UTC)},
        )
        connection.execute(
            text(
                "INSERT INTO session (client_id, practitioner_id, device_id, mode, status, modality, "
                "body_site, electrode_area_cm2, planned_duration_s, out_of_limits, violations, "
                "created_at) VALUES (1, 1, 1, 'recorded', 'completed', 'ems', 'calf', 25, 600, "
                "false, '[]', :t)"
            ),
            {"t": datetime.now(UTC)},
        )
        connection.execute(
            text(
                "INSERT INTO session_event (session_id, kind, occurred_at, recorded_at, payload) "
                "VALUES (1, 'note', :t, :t, '{}')"
            ),
            {"t": datetime.now(UTC)},
        )
        return int(connection.execute(text("SELECT max(id) FROM session_event")).scalar_one())


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE session_event SET kind = 'changed' WHERE id = :id",
        "DELETE FROM session_event WHERE id = :id",
    ],
)
def test_session_events_are_append_only_in_the_database(engine: Engine, statement: str) -> None:
    event_id = _insert_event(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement), {"id": event_id})
    with engine.connect() as connection:
        kind = connection.execute(
            text("SELECT kind FROM session_event WHERE id = :id"), {"id": event_id}
        ).scalar_one()
    assert kind == "note"
