"""Engine configuration and the column types every table relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, StatementError
from sqlmodel import Session, select

from sessionlog.store.database import make_engine, normalise_url, session_scope
from sessionlog.store.models import Client, SessionEvent
from tests.rows import insert_session


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
    session_id = insert_session(engine, mode="recorded", status="completed")
    with session_scope(engine) as db:
        event = SessionEvent(session_id=session_id, kind="note", occurred_at=datetime.now(UTC))
        db.add(event)
        db.flush()
        assert event.id is not None
        return event.id


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
