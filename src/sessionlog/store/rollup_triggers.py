"""Database triggers that keep the day rollup of the dose summary honest, whoever writes.

``session_day_summary`` (see ``models.SessionDaySummary``) is derived from ``session`` and
``session_event``. Rather than trusting every write path to update it, the database itself records,
in the writing transaction, each (UTC day of ``started_at``, modality) a write may have changed, in
``session_day_summary_dirty``: a session INSERT, UPDATE or DELETE marks the row's key before and
after the change and the key of the session it supersedes (which enters or leaves the set of latest
versions), and an adverse event marks the key of every version of its session's correction chain
(the chain's events count on its latest version, whichever version the event was recorded on).
Readers and the refresh in ``sessionlog.analytics.day_summary`` never trust a rollup row whose key is
marked.

The marks must be cheap, because a bulk import goes through them. SQLite runs one small row trigger
per statement that skips a key already marked (SQLite writers are serialised, so the check is exact).
PostgreSQL runs one statement-level trigger per writing statement over its transition tables and
appends the distinct keys without looking for an existing mark: deduplicating would need a row lock,
which would make concurrent writers of the same day wait for each other's commit.

Like the append-only triggers, these are installed by migrations; a migration that rebuilds
``session`` or ``session_event`` in SQLite batch mode drops them and must install them again. The
day expressions here must equal the summary's UTC day bucket (``aggregates.time_bucket``).
Migration 0005 installed the first definition, which marked only the event's own session
(``across_chains=False``); migration 0006 replaced it with the chain-wide one, the default.
"""

from __future__ import annotations

from sqlalchemy import Connection

from sessionlog.store.models import NO_START_DAY

# Every statement here is DDL text assembled from this module's constants and fixed row aliases
# (hence the S608 waivers): no value from outside reaches it.

DIRTY_TABLE = "session_day_summary_dirty"
ADVERSE_EVENT_KIND = "adverse_event"
PG_SESSION_FUNCTION = "session_day_summary_mark_session"
PG_EVENT_FUNCTION = "session_day_summary_mark_event"
SQLITE_TRIGGERS = (
    "session_day_summary_session_insert",
    "session_day_summary_session_replace",
    "session_day_summary_session_update",
    "session_day_summary_session_delete",
    "session_day_summary_adverse_event",
)
PG_TRIGGERS = (
    ("session_day_summary_session_insert", "session"),
    ("session_day_summary_session_update", "session"),
    ("session_day_summary_session_delete", "session"),
    ("session_day_summary_adverse_event", "session_event"),
)


def _sqlite_key(row: str) -> tuple[str, str, str]:
    """The (started, day, modality) key of a session row, as SQLite expressions."""
    return (
        f"({row}.started_at IS NOT NULL)",
        f"coalesce(substr({row}.started_at, 1, 10), '{NO_START_DAY.isoformat()}')",
        f"{row}.modality",
    )


def _pg_key(row: str) -> str:
    """The (started, day, modality) key of a session row, as a PostgreSQL select list."""
    return (
        f"{row}.started_at IS NOT NULL, "
        f"coalesce(CAST(timezone('UTC', {row}.started_at) AS DATE), "
        f"DATE '{NO_START_DAY.isoformat()}'), {row}.modality"
    )


def _sqlite_mark(row: str, source: str = "", *, distinct: bool = False) -> str:
    """Mark the key of ``row`` (``NEW``, ``OLD`` or an alias that ``source`` introduces).

    ``distinct`` when ``source`` can yield several rows of one key: the marks the statement
    inserts are not visible to its own NOT EXISTS.
    """
    started, day, modality = _sqlite_key(row)
    not_marked = (
        f"NOT EXISTS (SELECT 1 FROM {DIRTY_TABLE} AS mark WHERE mark.started = {started} "  # noqa: S608
        f"AND mark.day = {day} AND mark.modality = {modality})"
    )
    if source:
        select = "SELECT DISTINCT" if distinct else "SELECT"
        return (
            f"INSERT INTO {DIRTY_TABLE} (started, day, modality) "
            f"{select} {started}, {day}, {modality} FROM {source} AND {not_marked};"
        )
    return (
        f"INSERT INTO {DIRTY_TABLE} (started, day, modality) "
        f"SELECT {started}, {day}, {modality} WHERE {not_marked};"
    )


def _sqlite_mark_superseded(row: str) -> str:
    """Mark the key of the session that ``row`` supersedes: it enters or leaves the latest set."""
    return _sqlite_mark("target", f"session AS target WHERE target.id = {row}.supersedes_id")


# The root of the chain of the session an event names, and the versions of that chain: the root
# and every later version linked to it (``store/chains.py``).
_SQLITE_ROOT = (
    "coalesce((SELECT link.root_id FROM session_chain AS link "
    "WHERE link.session_id = NEW.session_id), NEW.session_id)"
)
_SQLITE_CHAIN = (
    f"session AS version WHERE version.id IN (SELECT {_SQLITE_ROOT} UNION ALL "  # noqa: S608
    f"SELECT link.session_id FROM session_chain AS link WHERE link.root_id = {_SQLITE_ROOT})"
)


def _install_sqlite(connection: Connection, *, across_chains: bool) -> None:
    adverse_event_marks = (
        _sqlite_mark("version", _SQLITE_CHAIN, distinct=True)
        if across_chains
        else _sqlite_mark("owner", "session AS owner WHERE owner.id = NEW.session_id")
    )
    statements = {
        "session_day_summary_session_insert": (
            "AFTER INSERT ON session",
            [_sqlite_mark("NEW"), _sqlite_mark_superseded("NEW")],
        ),
        # INSERT OR REPLACE deletes the row it replaces without firing DELETE triggers (unless
        # recursive triggers are on), so the replaced row's keys are marked before it goes.
        "session_day_summary_session_replace": (
            "BEFORE INSERT ON session",
            [
                _sqlite_mark("replaced", "session AS replaced WHERE replaced.id = NEW.id"),
                _sqlite_mark(
                    "target",
                    "session AS replaced JOIN session AS target "
                    "ON target.id = replaced.supersedes_id WHERE replaced.id = NEW.id",
                ),
            ],
        ),
        "session_day_summary_session_update": (
            "AFTER UPDATE ON session",
            [
                _sqlite_mark("OLD"),
                _sqlite_mark("NEW"),
                _sqlite_mark_superseded("OLD"),
                _sqlite_mark_superseded("NEW"),
            ],
        ),
        "session_day_summary_session_delete": (
            "AFTER DELETE ON session",
            [_sqlite_mark("OLD"), _sqlite_mark_superseded("OLD")],
        ),
        "session_day_summary_adverse_event": (
            f"AFTER INSERT ON session_event WHEN NEW.kind = '{ADVERSE_EVENT_KIND}'",
            [adverse_event_marks],
        ),
    }
    for name, (timing, body) in statements.items():
        connection.exec_driver_sql(f"CREATE TRIGGER {name} {timing} BEGIN {' '.join(body)} END")


def _pg_keys_of(rows: str) -> str:
    """A UNION of the keys of the transition table ``rows`` and of the sessions they supersede.

    The superseded sessions are fetched by primary key through an array, so the planner never
    considers scanning ``session`` for a batch of inserted rows.
    """
    return (
        f"SELECT {_pg_key('r')} FROM {rows} AS r "  # noqa: S608
        f"UNION SELECT {_pg_key('target')} FROM session AS target WHERE target.id = ANY "
        f"(ARRAY(SELECT r.supersedes_id FROM {rows} AS r WHERE r.supersedes_id IS NOT NULL))"
    )


def _pg_adverse_event_keys(*, across_chains: bool) -> str:
    """The keys an inserted batch of events (``new_rows``) marks: its adverse events' sessions'.

    Across chains, every version of each such session's chain: the roots, and the versions linked
    to them, all fetched by key through arrays like the superseded sessions above.
    """
    owners = (
        "ARRAY(SELECT e.session_id FROM new_rows AS e "  # noqa: S608
        f"WHERE e.kind = '{ADVERSE_EVENT_KIND}')"
    )
    if not across_chains:
        return (
            f"SELECT DISTINCT {_pg_key('owner')} FROM session AS owner "  # noqa: S608
            f"WHERE owner.id = ANY ({owners})"
        )
    roots = (
        "ARRAY(SELECT coalesce(link.root_id, owner.id) FROM unnest("  # noqa: S608
        f"{owners}) AS owner (id) LEFT JOIN session_chain AS link ON link.session_id = owner.id)"
    )
    versions = (
        f"ARRAY(SELECT unnest({roots}) UNION ALL SELECT link.session_id "  # noqa: S608
        f"FROM session_chain AS link WHERE link.root_id = ANY ({roots}))"
    )
    return (
        f"SELECT DISTINCT {_pg_key('version')} FROM session AS version "  # noqa: S608
        f"WHERE version.id = ANY ({versions})"
    )


def _install_postgresql(connection: Connection, *, across_chains: bool) -> None:
    insert = f"INSERT INTO {DIRTY_TABLE} (started, day, modality) "
    connection.exec_driver_sql(
        f"CREATE OR REPLACE FUNCTION {PG_SESSION_FUNCTION}() RETURNS trigger AS $$ BEGIN "
        f"IF TG_OP = 'INSERT' THEN {insert}{_pg_keys_of('new_rows')}; "
        f"ELSIF TG_OP = 'UPDATE' THEN "
        f"{insert}{_pg_keys_of('old_rows')} UNION {_pg_keys_of('new_rows')}; "
        f"ELSE {insert}{_pg_keys_of('old_rows')}; END IF; "
        "RETURN NULL; END; $$ LANGUAGE plpgsql"
    )
    connection.exec_driver_sql(
        f"CREATE OR REPLACE FUNCTION {PG_EVENT_FUNCTION}() RETURNS trigger AS $$ BEGIN "
        f"{insert}{_pg_adverse_event_keys(across_chains=across_chains)}; "
        "RETURN NULL; END; $$ LANGUAGE plpgsql"
    )
    transitions = {
        "INSERT": "NEW TABLE AS new_rows",
        "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "DELETE": "OLD TABLE AS old_rows",
    }
    for operation, tables in transitions.items():
        connection.exec_driver_sql(
            f"CREATE TRIGGER session_day_summary_session_{operation.lower()} "
            f"AFTER {operation} ON session REFERENCING {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_SESSION_FUNCTION}()"
        )
    connection.exec_driver_sql(
        "CREATE TRIGGER session_day_summary_adverse_event AFTER INSERT ON session_event "
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {PG_EVENT_FUNCTION}()"
    )


def install_day_summary_triggers(connection: Connection, *, across_chains: bool = True) -> None:
    """Create the triggers that mark rollup keys dirty on every write that can change them.

    ``across_chains=False`` is the definition of migration 0005 (an adverse event marks only its
    own session), kept so that migration and the downgrade of 0006 install what they always did.
    """
    if connection.dialect.name == "postgresql":
        _install_postgresql(connection, across_chains=across_chains)
    else:
        _install_sqlite(connection, across_chains=across_chains)


def drop_day_summary_triggers(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        for name, table in PG_TRIGGERS:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {PG_SESSION_FUNCTION}()")
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {PG_EVENT_FUNCTION}()")
        return
    for name in SQLITE_TRIGGERS:
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")


def mark_every_key_dirty(connection: Connection, *, corrected_only: bool = False) -> None:
    """Mark the key of every stored session, so the next refresh rebuilds the whole rollup.

    Used when the rollup is created over existing history (and whenever its definition changes):
    the rebuild then happens through the same refresh as any other change. ``corrected_only``
    marks only the sessions of chains with more than one version (their root and later versions),
    for a change of definition that affects only those (it needs ``session_chain``).
    """
    where = (
        " WHERE s.id IN (SELECT link.session_id FROM session_chain AS link "
        "UNION ALL SELECT link.root_id FROM session_chain AS link)"
        if corrected_only
        else ""
    )
    if connection.dialect.name == "postgresql":
        keys = f"SELECT DISTINCT {_pg_key('s')} FROM session AS s{where}"  # noqa: S608
    else:
        started, day, modality = _sqlite_key("s")
        keys = f"SELECT DISTINCT {started}, {day}, {modality} FROM session AS s{where}"  # noqa: S608
    connection.exec_driver_sql(f"INSERT INTO {DIRTY_TABLE} (started, day, modality) {keys}")


__all__ = [
    "DIRTY_TABLE",
    "drop_day_summary_triggers",
    "install_day_summary_triggers",
    "mark_every_key_dirty",
]
