"""Alembic environment: migrates the engine sessionlog hands over, or the configured database."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import sessionlog.store.models  # noqa: F401  (registers the tables on the metadata)
from sessionlog.settings import Settings
from sessionlog.store.database import make_engine

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:
        engine = make_engine(Settings().effective_database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; connect to the database")
run_migrations()
