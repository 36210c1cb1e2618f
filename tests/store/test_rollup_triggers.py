"""Every write that can change a day of the dose summary marks that day, whoever writes, on both engines."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlmodel import col

from sessionlog.store.append_only import drop_ended_session_guard
from sessionlog.store.database import session_scope
from sessionlog.store.models import NO_START_DAY, TreatmentSession
from tests.store.rollup_rows import (
    DIRTY,
    Refs,
    add_event,
    add_session,
    clear_marks,
    make_refs,
    marks,
)

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def refs(engine: Engine) -> Refs:
    return make_refs(engine)


def test_a_new_session_marks_its_utc_day_and_modality(engine: Engine, refs: Refs) -> None:
    # 23:30 at UTC-2 on 1 March is 01:30 UTC on 2 March: the mark follows the UTC day.
    local_evening = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(-timedelta(hours=2)))
    clear_marks(engine)
    add_session(engine, refs, started_at=local_evening, modality="microcurrent")
    assert marks(engine) == {(True, date(2026, 3, 2), "microcurrent")}


def test_a_session_without_a_start_is_marked_under_the_placeholder_day(
    engine: Engine, refs: Refs
) -> None:
    clear_marks(engine)
    add_session(engine, refs, started_at=None, status="planned")
    assert marks(engine) == {(False, NO_START_DAY, "ems")}


def test_starting_a_planned_session_marks_the_key_it_leaves_and_the_one_it_joins(
    engine: Engine, refs: Refs
) -> None:
    planned = add_session(engine, refs, started_at=None, status="planned", modality="microcurrent")
    clear_marks(engine)
    with session_scope(engine) as db:
        row = db.get(TreatmentSession, planned)
        assert row is not None
        row.status = "running"
        row.started_at = MONDAY
        row.modality = "ems"
    assert marks(engine) == {(False, NO_START_DAY, "microcurrent"), (True, MONDAY.date(), "ems")}


def test_a_plain_sql_update_is_marked_like_an_orm_one(engine: Engine, refs: Refs) -> None:
    running = add_session(engine, refs, started_at=MONDAY, status="running", minutes=None)
    clear_marks(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE session SET status = 'completed', dose_total_charge_uc = 5 WHERE id = :id"
            ),
            {"id": running},
        )
    assert marks(engine) == {(True, MONDAY.date(), "ems")}


def test_a_correction_marks_its_own_key_and_the_key_of_the_session_it_supersedes(
    engine: Engine, refs: Refs
) -> None:
    original = add_session(engine, refs, started_at=MONDAY, modality="ems")
    clear_marks(engine)
    later = MONDAY + timedelta(days=40)
    add_session(engine, refs, started_at=later, modality="microcurrent", supersedes_id=original)
    assert marks(engine) == {(True, later.date(), "microcurrent"), (True, MONDAY.date(), "ems")}


def test_an_adverse_event_marks_its_sessions_key_and_a_note_does_not(
    engine: Engine, refs: Refs
) -> None:
    session_id = add_session(engine, refs, started_at=MONDAY, modality="microcurrent")
    clear_marks(engine)
    add_event(engine, session_id, "note", MONDAY)
    assert marks(engine) == set()
    # Reported days after the session ended: it still changes the session's day.
    add_event(engine, session_id, "adverse_event", MONDAY + timedelta(days=3))
    assert marks(engine) == {(True, MONDAY.date(), "microcurrent")}


def test_many_rows_in_one_statement_mark_each_of_their_keys(engine: Engine, refs: Refs) -> None:
    clear_marks(engine)
    days = [MONDAY + timedelta(days=d, hours=h) for d in (0, 1, 31) for h in (0, 5)]
    with engine.begin() as connection:
        connection.execute(
            TreatmentSession.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "client_id": refs.client_id,
                    "practitioner_id": refs.practitioner_id,
                    "device_id": refs.device_id,
                    "mode": "recorded",
                    "status": "completed",
                    "modality": "ems",
                    "body_site": "calf",
                    "electrode_area_cm2": 25.0,
                    "planned_duration_s": 600,
                    "started_at": day,
                    "out_of_limits": False,
                    "violations": [],
                    "link_errors": {},
                    "created_at": day,
                }
                for day in days
            ],
        )
    assert marks(engine) == {(True, day.date(), "ems") for day in days}


def test_sqlite_keeps_one_mark_per_key(engine: Engine, refs: Refs) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL appends a mark per statement: deduplicating would need a lock")
    clear_marks(engine)
    for hour in range(3):
        add_session(engine, refs, started_at=MONDAY + timedelta(hours=hour))
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(DIRTY)).scalar_one() == 1


def test_sqlite_insert_or_replace_marks_the_row_it_replaces(engine: Engine, refs: Refs) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("INSERT OR REPLACE is SQLite's")
    replaced = add_session(engine, refs, started_at=MONDAY, status="running", minutes=None)
    clear_marks(engine)
    later = MONDAY + timedelta(days=10)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT OR REPLACE INTO session (id, client_id, practitioner_id, device_id, mode, "
                "status, modality, body_site, electrode_area_cm2, planned_duration_s, started_at, "
                "out_of_limits, violations, link_errors, created_at) VALUES (:id, :client, :user, "
                ":device, 'recorded', 'completed', 'microcurrent', 'face', 10, 600, :started, 0, "
                "'[]', '{}', :started)"
            ),
            {
                "id": replaced,
                "client": refs.client_id,
                "user": refs.practitioner_id,
                "device": refs.device_id,
                "started": later.replace(tzinfo=None).isoformat(sep=" "),
            },
        )
    assert marks(engine) == {(True, MONDAY.date(), "ems"), (True, later.date(), "microcurrent")}


def test_a_deleted_session_marks_its_keys_if_the_final_session_guard_is_ever_lifted(
    engine: Engine, refs: Refs
) -> None:
    original = add_session(engine, refs, started_at=MONDAY)
    later = MONDAY + timedelta(days=1)
    correction = add_session(engine, refs, started_at=later, supersedes_id=original)
    with engine.begin() as connection:
        drop_ended_session_guard(connection)
    clear_marks(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM session WHERE id = :id"), {"id": correction})
    # The superseded original is the latest version again: its day changes too.
    assert marks(engine) == {(True, later.date(), "ems"), (True, MONDAY.date(), "ems")}


def test_a_refused_write_leaves_no_mark(engine: Engine, refs: Refs) -> None:
    ended = add_session(engine, refs, started_at=MONDAY)
    clear_marks(engine)
    with pytest.raises(Exception, match="final"), engine.begin() as connection:
        connection.execute(
            update(TreatmentSession)
            .where(col(TreatmentSession.id) == ended)
            .values(started_at=MONDAY + timedelta(days=1))
        )
    assert marks(engine) == set()
