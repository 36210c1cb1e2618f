"""Correction chains: which versions of a session belong together, kept by the database itself.

A correction or a removal is a new ``session`` row that supersedes the latest version; the versions
form a chain from the first (the root) to the latest. Events and telemetry are recorded on whichever
version was current (a live session's telemetry always on the first), yet they belong to the whole
chain, so readers need every version of a chain from any one of them. ``session_chain`` holds, for
each later version, its chain's root: the versions of a chain are its root and the rows naming that
root, two index lookups whatever the chain's length.

The rows are derived from ``supersedes_id`` by a trigger on every session INSERT, in the writing
transaction, so a script or an import that writes sessions keeps them as right as the service does;
first versions cost nothing (the trigger is conditional). ``supersedes_id`` never changes after the
INSERT (another trigger refuses it), so a link never goes stale, and the table is append-only.
A unique index on ``supersedes_id`` gives each version at most one successor, so a chain never forks.
Like the other triggers, these are installed by migrations (0006).
"""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from sessionlog.store.models import SUPERSEDES_INDEX, SessionChain, TreatmentSession

LINK_TRIGGER = "session_chain_link"
FIXED_TRIGGER = "session_supersedes_fixed"
PG_LINK_FUNCTION = "session_chain_link"
PG_FIXED_FUNCTION = "session_supersedes_fixed"

# The root of the chain that the new row continues: its predecessor's root, or the predecessor
# itself when that is a first version.
_ROOT_OF_NEW = (
    "coalesce((SELECT link.root_id FROM session_chain AS link "
    "WHERE link.session_id = NEW.supersedes_id), NEW.supersedes_id)"
)
_FIXED_MESSAGE = "supersedes_id never changes: a correction is a new version"

FILL_EXISTING = (
    "WITH RECURSIVE chain (session_id, root_id) AS ("
    "SELECT later.id, later.supersedes_id FROM session AS later "
    "JOIN session AS origin ON origin.id = later.supersedes_id WHERE origin.supersedes_id IS NULL "
    "UNION ALL "
    "SELECT later.id, chain.root_id FROM session AS later "
    "JOIN chain ON later.supersedes_id = chain.session_id) "
    "INSERT INTO session_chain (session_id, root_id) SELECT session_id, root_id FROM chain"
)
"""Links every stored later version to its root, for the migration that creates the table."""

# Every statement here is DDL text assembled from this module's constants (hence the S608
# waivers): no value from outside reaches it.


def install_chain_triggers(connection: Connection) -> None:
    """Link each inserted later version to its root; refuse any change of ``supersedes_id``."""
    if connection.dialect.name == "postgresql":
        # A row trigger with a WHEN condition: first versions (nearly every row of a bulk import)
        # never call the function. Row triggers of one statement fire in row order, so a chain
        # inserted by a single statement is linked version after version.
        connection.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {PG_LINK_FUNCTION}() RETURNS trigger AS $$ BEGIN "  # noqa: S608
            f"INSERT INTO session_chain (session_id, root_id) VALUES (NEW.id, {_ROOT_OF_NEW}); "
            "RETURN NULL; END; $$ LANGUAGE plpgsql"
        )
        connection.exec_driver_sql(
            f"CREATE TRIGGER {LINK_TRIGGER} AFTER INSERT ON session FOR EACH ROW "
            f"WHEN (NEW.supersedes_id IS NOT NULL) EXECUTE FUNCTION {PG_LINK_FUNCTION}()"
        )
        connection.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {PG_FIXED_FUNCTION}() RETURNS trigger AS $$ BEGIN "
            f"RAISE EXCEPTION 'session %%: {_FIXED_MESSAGE}', OLD.id "
            "USING ERRCODE = 'integrity_constraint_violation'; END; $$ LANGUAGE plpgsql"
        )
        connection.exec_driver_sql(
            f"CREATE TRIGGER {FIXED_TRIGGER} BEFORE UPDATE OF supersedes_id ON session "
            "FOR EACH ROW WHEN (NEW.supersedes_id IS DISTINCT FROM OLD.supersedes_id) "
            f"EXECUTE FUNCTION {PG_FIXED_FUNCTION}()"
        )
        return
    connection.exec_driver_sql(
        f"CREATE TRIGGER {LINK_TRIGGER} AFTER INSERT ON session "  # noqa: S608
        "WHEN NEW.supersedes_id IS NOT NULL BEGIN "
        f"INSERT INTO session_chain (session_id, root_id) VALUES (NEW.id, {_ROOT_OF_NEW}); END"
    )
    connection.exec_driver_sql(
        f"CREATE TRIGGER {FIXED_TRIGGER} BEFORE UPDATE OF supersedes_id ON session "
        "WHEN NEW.supersedes_id IS NOT OLD.supersedes_id "
        f"BEGIN SELECT RAISE(ABORT, '{_FIXED_MESSAGE}'); END"
    )


def drop_chain_triggers(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {LINK_TRIGGER} ON session")
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {FIXED_TRIGGER} ON session")
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {PG_LINK_FUNCTION}()")
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {PG_FIXED_FUNCTION}()")
        return
    connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {LINK_TRIGGER}")
    connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {FIXED_TRIGGER}")


def chain_versions(db: Session, session_id: int) -> list[int]:
    """The ids of every version of the chain ``session_id`` belongs to, oldest first."""
    root = db.execute(
        select(col(SessionChain.root_id)).where(col(SessionChain.session_id) == session_id)
    ).scalar()
    root_id = session_id if root is None else int(root)
    later = db.execute(
        select(col(SessionChain.session_id))
        .where(col(SessionChain.root_id) == root_id)
        .order_by(col(SessionChain.session_id))
    ).scalars()
    return [root_id, *later]


def lock_chain(db: Session, session_id: int) -> None:
    """Lock every version of the chain (PostgreSQL) until the transaction ends.

    A correction takes this before it checks that it supersedes the latest version, so concurrent
    corrections of one chain run one after the other and the later one finds the newer version
    (a 409 naming it). The lock also waits for, and holds off, events being inserted on any version
    (their foreign key check locks the version they name), so the adverse-event trigger of the day
    rollup always sees the chain's latest version. SQLite serialises writers already.
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    db.execute(
        select(col(TreatmentSession.id))
        .where(col(TreatmentSession.id).in_(chain_versions(db, session_id)))
        .order_by(col(TreatmentSession.id))
        .with_for_update()
    ).all()


def is_second_successor(error: IntegrityError) -> bool:
    """Whether ``error`` is the unique index refusing a second version superseding one row."""
    diag = getattr(error.orig, "diag", None)
    if diag is not None:
        return getattr(diag, "constraint_name", None) == SUPERSEDES_INDEX
    return "session.supersedes_id" in str(error.orig)


__all__ = [
    "FILL_EXISTING",
    "chain_versions",
    "drop_chain_triggers",
    "install_chain_triggers",
    "is_second_successor",
    "lock_chain",
]
