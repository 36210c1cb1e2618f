"""Engine construction: one place that knows how each database must be configured.

SQLite is opened in WAL mode with foreign keys enforced and a busy timeout, so a reader never blocks
the session recorder and a dangling reference is refused as it would be on PostgreSQL. PostgreSQL is
reached through psycopg 3; a bare ``postgresql://`` URL is mapped to that driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_BEGIN_OPTION = "sessionlog_sqlite_begin"


def read_only(engine: Engine) -> Engine:
    """The same engine (and pool) for work that only reads: on SQLite it takes no write lock."""
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})


def writable(engine: Engine) -> Engine:
    """The same engine (and pool) for work that writes, even when given a ``read_only`` engine.

    On SQLite the transaction takes the write lock at BEGIN (IMMEDIATE), so two writers queue on the
    busy timeout instead of one failing to upgrade a read snapshot that the other made stale.
    """
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to psycopg 3, the driver we install and test."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that
        # SAVEPOINT and explicit BEGIN behave as documented.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE by default: take the write lock at the start, so two writers queue
        # (busy_timeout) instead of both reading and then failing to upgrade their locks (the
        # audit chain reads, then writes). Read-only work asks for DEFERRED (see read_only).
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; for a SQLite file, create its folder first."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work: committed when the block ends normally, rolled back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
