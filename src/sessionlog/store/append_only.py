"""Database-level enforcement of append-only tables.

Application code never updates or deletes event rows, but "never" must hold against a bug, a script or
a person with a SQL prompt too: these triggers make the database itself refuse UPDATE and DELETE. They
are installed by migrations (autogenerate does not see triggers), for SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import Connection

PG_FUNCTION = "sessionlog_refuse_change"


def install_append_only(connection: Connection, table: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '%% is append-only: %% refused', TG_TABLE_NAME, TG_OP "
            "USING ERRCODE = 'integrity_constraint_violation'; END; $$ LANGUAGE plpgsql"
        )
        connection.exec_driver_sql(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
        )
        connection.exec_driver_sql(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
        )
        return
    for operation in ("UPDATE", "DELETE"):
        connection.exec_driver_sql(
            f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
        )


def drop_append_only(connection: Connection, table: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        return
    for operation in ("update", "delete"):
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")


def drop_append_only_function(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")


ENDED_SESSION_GUARD = "session_ended_is_final"
OPEN_STATUSES = "('planned', 'running', 'paused')"


def install_ended_session_guard(connection: Connection) -> None:
    """A session row may change only while it is open (planned, running, paused); once it has
    ended it is final, and no session row is ever deleted. Corrections are new rows."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {ENDED_SESSION_GUARD}() RETURNS trigger AS $$ BEGIN "
            f"IF TG_OP = 'DELETE' OR OLD.status NOT IN {OPEN_STATUSES} THEN "
            "RAISE EXCEPTION 'session %% has ended and is final: %% refused', OLD.id, TG_OP "
            "USING ERRCODE = 'integrity_constraint_violation'; END IF; "
            "RETURN NEW; END; $$ LANGUAGE plpgsql"
        )
        connection.exec_driver_sql(
            f"CREATE TRIGGER {ENDED_SESSION_GUARD} BEFORE UPDATE OR DELETE ON session "
            f"FOR EACH ROW EXECUTE FUNCTION {ENDED_SESSION_GUARD}()"
        )
        return
    connection.exec_driver_sql(
        f"CREATE TRIGGER {ENDED_SESSION_GUARD}_update BEFORE UPDATE ON session "
        f"WHEN OLD.status NOT IN {OPEN_STATUSES} "
        "BEGIN SELECT RAISE(ABORT, 'session has ended and is final: UPDATE refused'); END"
    )
    connection.exec_driver_sql(
        f"CREATE TRIGGER {ENDED_SESSION_GUARD}_delete BEFORE DELETE ON session "
        "BEGIN SELECT RAISE(ABORT, 'sessions are never deleted'); END"
    )


def drop_ended_session_guard(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {ENDED_SESSION_GUARD} ON session")
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {ENDED_SESSION_GUARD}()")
        return
    connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {ENDED_SESSION_GUARD}_update")
    connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {ENDED_SESSION_GUARD}_delete")
