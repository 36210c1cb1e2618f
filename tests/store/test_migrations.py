"""The schema is made only by migrations, and the migrations agree with the models on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

import sessionlog.store.models  # noqa: F401
from sessionlog.analytics.aggregates import parse_group_by, summarise
from sessionlog.analytics.day_summary import pending_keys
from sessionlog.analytics.filters import SessionFilter
from sessionlog.store import migrations
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import NO_START_DAY
from tests.store.rollup_rows import add_session, make_refs, marks

EXPECTED_TABLES = {
    "app_user",
    "client",
    "device",
    "program",
    "session",
    "session_channel",
    "session_event",
    "session_day_summary",
    "session_day_summary_dirty",
}


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        assert migrations.current_revision(engine) is None
        migrations.upgrade(engine)
        assert migrations.current_revision(engine) == migrations.head_revision(engine)
        assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES

        migrations.downgrade(engine, "base")
        assert migrations.current_revision(engine) is None
        assert not EXPECTED_TABLES & set(inspect(engine).get_table_names())

        migrations.upgrade(engine)
        assert migrations.current_revision(engine) == migrations.head_revision(engine)
    finally:
        engine.dispose()


def test_models_and_migrations_agree(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        migrations.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            drift = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert drift == []


def test_stale_database_is_refused_with_the_command_that_fixes_it(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        with pytest.raises(migrations.DatabaseNotMigratedError, match="sessionlog db upgrade"):
            migrations.ensure_migrated(engine, auto_migrate=False)
        assert migrations.current_revision(engine) is None
    finally:
        engine.dispose()


def test_auto_migrate_brings_an_empty_database_to_head(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        migrations.ensure_migrated(engine, auto_migrate=True)
        assert migrations.current_revision(engine) == migrations.head_revision(engine)
        migrations.ensure_migrated(engine, auto_migrate=False)  # current: accepted as it is
    finally:
        engine.dispose()


def _rollup_triggers(engine: Engine) -> set[str]:
    query = (
        "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'session_day_summary%%'"
        if engine.dialect.name == "postgresql"
        else "SELECT name FROM sqlite_master WHERE type = 'trigger' "
        "AND name LIKE 'session_day_summary%%'"
    )
    with engine.connect() as connection:
        return {row[0] for row in connection.exec_driver_sql(query)}


def test_the_rollup_migration_marks_existing_history_and_the_first_summary_rebuilds_it(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    try:
        migrations.upgrade(engine, "0004")
        refs = make_refs(engine)
        monday = datetime(2026, 3, 2, 10, tzinfo=UTC)
        original = add_session(engine, refs, started_at=monday, modality="microcurrent")
        add_session(engine, refs, started_at=monday + timedelta(days=33), supersedes_id=original)
        add_session(engine, refs, started_at=None, status="planned")

        migrations.upgrade(engine)

        assert marks(engine) == {
            (True, monday.date(), "microcurrent"),
            (True, (monday + timedelta(days=33)).date(), "ems"),
            (False, NO_START_DAY, "ems"),
        }
        keys = parse_group_by("month,modality")
        with session_scope(engine) as db:
            from_rollup = summarise(db, SessionFilter(), keys)
        with engine.connect() as connection:
            assert pending_keys(connection) == 0
        with session_scope(engine) as db:
            assert from_rollup == summarise(db, SessionFilter(), keys, use_rollup=False)
        assert [row.metrics["session_count"] for row in from_rollup] == [1, 1]
    finally:
        engine.dispose()


def test_downgrading_the_rollup_removes_its_tables_and_triggers(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        migrations.upgrade(engine)
        assert len(_rollup_triggers(engine)) >= 4
        migrations.downgrade(engine, "0004")
        assert _rollup_triggers(engine) == set()
        tables = set(inspect(engine).get_table_names())
        assert not {"session_day_summary", "session_day_summary_dirty"} & tables
        # Sessions are still written without the marks' table.
        add_session(engine, make_refs(engine), started_at=datetime(2026, 3, 2, tzinfo=UTC))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM session")).scalar_one() == 1
    finally:
        engine.dispose()
