"""Schema migrations through Alembic, callable from the CLI, the service start-up and the tests.

The migration scripts live in the repository's top-level ``alembic/`` folder and are shipped inside the
wheel as ``sessionlog/migrations``; this module finds whichever is present, so an installed service and
a source checkout migrate with the same scripts.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import sessionlog


class DatabaseNotMigratedError(RuntimeError):
    """The database schema is not the one this code needs; the message says how to fix it."""


def script_location() -> Path:
    packaged = Path(sessionlog.__file__).parent / "migrations"
    if (packaged / "env.py").is_file():
        return packaged
    source_tree = Path(__file__).resolve().parents[3] / "alembic"
    if (source_tree / "env.py").is_file():
        return source_tree
    raise FileNotFoundError("the migration scripts are missing from this installation")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def ensure_migrated(engine: Engine, *, auto_migrate: bool) -> None:
    """Bring the schema to head when allowed; otherwise refuse to run on a stale schema."""
    head = head_revision(engine)
    current = current_revision(engine)
    if current == head:
        return
    if auto_migrate:
        upgrade(engine)
        return
    where = engine.url.render_as_string(hide_password=True)
    raise DatabaseNotMigratedError(
        f"the database {where} is at revision {current or 'none (empty)'}, this version needs "
        f"{head}: run `sessionlog db upgrade` (with the same SESSIONLOG_DATABASE_URL) and start again"
    )
