"""The schema is made only by migrations, and the migrations agree with the models on both engines."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import sessionlog.store.models  # noqa: F401
from sessionlog.store import migrations
from sessionlog.store.database import make_engine

EXPECTED_TABLES = {
    "app_user",
    "client",
    "device",
    "program",
    "session",
    "session_channel",
    "session_event",
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
