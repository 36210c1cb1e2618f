"""The day rollup behind the time-by-modality summaries: what a row holds, its refresh, what a reader trusts.

``session_day_summary`` holds, per UTC day of ``started_at`` and modality, the decomposable figures
(sums, non-NULL counts, a max, status and flag counts) of the sessions an unfiltered summary counts:
the latest version of each session, not removed, with the adverse events of its whole chain.
Triggers (``store/rollup_triggers.py``) mark in ``session_day_summary_dirty`` every key a write may
have changed, in the writing transaction.

``refresh_day_summary`` rebuilds the marked keys from ``session`` with the same per-session
expressions as the summary (``session_figures``) and deletes the marks it rebuilt, a batch of keys
per short write transaction. It claims marks before it reads the sessions, in a later statement, so
a write that commits meanwhile leaves its mark behind for the next refresh and is never lost.

A reader never depends on the refresh having run: ``current_day_figures`` reads the rollup only for
keys without a mark and recomputes the marked keys from ``session`` in the same statement, so the
figures are exact in whatever snapshot the statement runs. The refresh keeps that second part small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    Engine,
    FromClause,
    Select,
    Subquery,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col

from sessionlog.analytics.filters import SessionFilter, session_conditions
from sessionlog.analytics.session_figures import (
    adverse_events_of_chain,
    day_bounds,
    duration_s,
    sql_constant,
)
from sessionlog.store.database import SQLITE_BEGIN_OPTION, read_only, writable
from sessionlog.store.models import (
    SessionDaySummary,
    SessionDaySummaryDirty,
    TreatmentSession,
)

REFRESH_BATCH_KEYS = 64
"""Keys rebuilt per refresh transaction: on SQLite the write lock is held for one batch at a time,
so a recorder never waits long behind the rebuild of a whole history."""

KEY_COLUMNS: tuple[str, ...] = ("started", "day", "modality")
DAY_FIGURES: tuple[str, ...] = (
    "session_count",
    "duration_sum_s",
    "duration_count",
    "charge_sum_uc",
    "charge_count",
    "current_density_sum_ma_cm2",
    "current_density_count",
    "current_density_max_ma_cm2",
    "on_time_sum_s",
    "adverse_event_count",
    "aborted_count",
    "interrupted_count",
    "out_of_limits_count",
)
"""The figure columns of a rollup row, in table order."""

ROLLUP: Table = SessionDaySummary.__table__  # type: ignore[attr-defined]
DIRTY: Table = SessionDaySummaryDirty.__table__  # type: ignore[attr-defined]


def _keys_of(table: FromClause) -> tuple[Any, ...]:
    return tuple(table.c[name] for name in KEY_COLUMNS)


def _figures(dialect: str, adverse_events: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    """A rollup row's figures over the sessions in scope, ``adverse_events`` being per session."""
    s = TreatmentSession
    duration = duration_s(dialect)
    charge = col(s.dose_total_charge_uc)
    density = col(s.dose_max_current_density_ma_cm2)
    status = col(s.status)
    one, zero = sql_constant(1), sql_constant(0)
    return [
        func.count().label("session_count"),
        func.sum(duration).label("duration_sum_s"),
        func.count(duration).label("duration_count"),
        func.sum(charge).label("charge_sum_uc"),
        func.count(charge).label("charge_count"),
        func.sum(density).label("current_density_sum_ma_cm2"),
        func.count(density).label("current_density_count"),
        func.max(density).label("current_density_max_ma_cm2"),
        func.sum(col(s.dose_on_time_s)).label("on_time_sum_s"),
        func.coalesce(func.sum(adverse_events), zero).label("adverse_event_count"),
        func.sum(case((status == sql_constant("'aborted'"), one), else_=zero)).label(
            "aborted_count"
        ),
        func.sum(case((status == sql_constant("'interrupted'"), one), else_=zero)).label(
            "interrupted_count"
        ),
        func.sum(case((col(s.out_of_limits), one), else_=zero)).label("out_of_limits_count"),
    ]


def _sessions_of_key(keys: FromClause, dialect: str) -> list[tuple[bool, list[Any]]]:
    """The conditions putting a session under a key: one list for dated keys, one for undated."""
    s = TreatmentSession
    started_at = col(s.started_at)
    start, end, exact = day_bounds(keys.c.day, dialect)
    same_modality = col(s.modality) == keys.c.modality
    if dialect == "sqlite":
        # Without statistics SQLite takes an equality on an indexed column for a selective one and
        # would read a whole modality through ix_session_modality for every day; about half the
        # sessions of a day match, so it reads the day's range of ix_session_summary instead.
        same_modality = func.likelihood(same_modality, sql_constant("0.5"))
    on_day = [same_modality, started_at >= start, started_at < end]
    if exact is not None:
        on_day.append(exact)
    return [(True, on_day), (False, [same_modality, started_at.is_(None)])]


def day_figures(keys: FromClause, dialect: str) -> list[Select[Any]]:
    """Rollup rows recomputed from ``session`` for the keys in ``keys`` (started, day, modality).

    Two SELECTs to combine with UNION ALL: sessions with a start time, read day by day through the
    index on ``started_at``, and sessions without one. Only counted sessions contribute (the
    conditions of an unfiltered summary), so a key whose sessions are all superseded or removed
    yields no row, as it yields no group in the summary.

    Each key must be read as a range of the index whatever the planner believes about the number
    of marked keys (the marks table churns, its statistics are rarely current). SQLite joins
    with nested loops only, so a plain join does that. On PostgreSQL a plain join lets the planner
    sort or hash every session when it overestimates the keys, so each key is a LATERAL subquery,
    which it can only run per key. On both engines a session's adverse events (those of its chain
    of versions) are counted per session through their indexes (``adverse_events_of_chain``):
    SQLite would scan a joined grouped subquery once per session instead of indexing it.
    """
    s = TreatmentSession
    counted = session_conditions(SessionFilter())
    adverse_events = adverse_events_of_chain()
    parts: list[Select[Any]] = []
    for has_start, matches in _sessions_of_key(keys, dialect):
        which = keys.c.started if has_start else ~keys.c.started
        if dialect == "postgresql":
            per_key = (
                select(*_figures(dialect, adverse_events))
                .select_from(s)
                .where(*matches, *counted)
                .lateral("key_figures")
            )
            parts.append(
                select(*_keys_of(keys), *[per_key.c[name] for name in DAY_FIGURES])
                .select_from(keys)
                .join(per_key, true())
                .where(which, per_key.c.session_count > sql_constant(0))
            )
            continue
        parts.append(
            select(*_keys_of(keys), *_figures(dialect, adverse_events))
            .select_from(keys)
            .join(s, and_(*matches))
            .where(which, *counted)
            .group_by(*_keys_of(keys))
        )
    return parts


def current_day_figures(dialect: str) -> Subquery:
    """Every rollup row as it is in this snapshot: stored rows of unmarked keys, the rest recomputed."""
    marked = exists().where(*[DIRTY.c[n] == ROLLUP.c[n] for n in KEY_COLUMNS])
    stored = select(*_keys_of(ROLLUP), *[ROLLUP.c[n] for n in DAY_FIGURES]).where(~marked)
    marked_keys = select(*_keys_of(DIRTY)).distinct().subquery("marked_keys")
    fresh: CompoundSelect[Any] = union_all(stored, *day_figures(marked_keys, dialect))
    return fresh.subquery("day_figures")


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh rebuilt: distinct keys, and the transactions (batches) it took."""

    keys: int
    batches: int


def pending_keys(connection: Connection) -> int:
    """How many distinct keys are marked dirty, as this connection sees them."""
    marked = select(*_keys_of(DIRTY)).distinct().subquery()
    return int(connection.execute(select(func.count()).select_from(marked)).scalar_one())


def _refresh_batch(connection: Connection, batch_keys: int) -> int:
    """Rebuild up to ``batch_keys`` marked keys in the connection's transaction; returns how many.

    The marks are claimed first, then the sessions are read in later statements. On PostgreSQL
    (READ COMMITTED) a later statement sees every transaction whose mark was claimed, since a mark
    commits with its write; a write that commits after the claim has a mark that was not visible to
    it, so that mark survives. Refreshes are serialised by a table lock that plain readers and the
    triggers never take; SQLite serialises them with every other writer already.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql("LOCK TABLE session_day_summary IN SHARE ROW EXCLUSIVE MODE")
    dirty_key = tuple_(*_keys_of(DIRTY))
    next_keys = select(*_keys_of(DIRTY)).distinct().order_by(*_keys_of(DIRTY)).limit(batch_keys)
    connection.execute(update(DIRTY).where(dirty_key.in_(next_keys)).values(claimed=True))
    claimed = select(*_keys_of(DIRTY)).where(DIRTY.c.claimed).distinct().subquery("claimed_keys")
    rebuilt = int(connection.execute(select(func.count()).select_from(claimed)).scalar_one())
    if rebuilt:
        claimed_keys = select(*_keys_of(claimed))
        connection.execute(delete(ROLLUP).where(tuple_(*_keys_of(ROLLUP)).in_(claimed_keys)))
        connection.execute(
            insert(ROLLUP).from_select(
                [*KEY_COLUMNS, *DAY_FIGURES], union_all(*day_figures(claimed, dialect))
            )
        )
        connection.execute(delete(DIRTY).where(DIRTY.c.claimed))
    return rebuilt


def _in_batches(pending: int, batch_keys: int, rebuild: Callable[[], int]) -> RefreshReport:
    """Run ``rebuild`` (one batch) until a batch finds fewer keys than it may take.

    At most as many batches as the ``pending`` keys counted at the start need, so writers marking
    new days all along cannot keep a refresh going: what is left stays marked, and readers
    recompute it until the next refresh.
    """
    if batch_keys < 1:
        raise ValueError("batch_keys must be at least 1")
    keys = batches = 0
    while pending and batches <= pending // batch_keys:
        rebuilt = rebuild()
        keys += rebuilt
        batches += 1
        if rebuilt < batch_keys:
            break
    return RefreshReport(keys, batches)


def refresh_pending(
    connection: Connection, *, batch_keys: int = REFRESH_BATCH_KEYS
) -> RefreshReport:
    """Rebuild the marked keys inside the transaction already open on ``connection``; no commit."""
    return _in_batches(
        pending_keys(connection), batch_keys, lambda: _refresh_batch(connection, batch_keys)
    )


def refresh_day_summary(engine: Engine, *, batch_keys: int = REFRESH_BATCH_KEYS) -> RefreshReport:
    """Rebuild every marked key, each batch in its own committed write transaction.

    When nothing is marked it only reads (on SQLite without the write lock), so a summary that
    follows no write costs one small query more than reading the rollup.
    """
    with read_only(engine).connect() as connection:
        pending = pending_keys(connection)
    postgresql = engine.dialect.name == "postgresql"

    def rebuild() -> int:
        with writable(engine).begin() as connection:
            if postgresql:
                # A batch reads each day through the index; JIT-compiling its statement costs more
                # than it saves (a whole rebuild of 1,000,000 sessions: 12 s with, 3.3 s without).
                connection.exec_driver_sql("SET LOCAL jit = off")
            return _refresh_batch(connection, batch_keys)

    report = _in_batches(pending, batch_keys, rebuild)
    if report.keys and postgresql:
        # The marks table empties and fills all the time, and autovacuum may last have sampled it
        # full: the planner would then cost the recomputation of thousands of marked days into
        # every summary and JIT-compile a statement that reads a few thousand rows.
        with engine.begin() as connection:
            connection.exec_driver_sql(f"ANALYZE {DIRTY.name}")
    return report


def refresh_before_reading(db: Session | OrmSession) -> RefreshReport:
    """Refresh the rollup before ``db`` reads a summary from it, in a transaction that may write.

    Normally in transactions of its own, committed, so the work serves every later reader and no
    lock outlives it; on SQLite the write lock is taken per batch even when ``db`` is a read-only
    (DEFERRED) session. The exception is a SQLite session already inside a write (IMMEDIATE)
    transaction: it holds, or will take, the write lock another connection would wait for, so the
    refresh runs inside that transaction instead. Whatever a refresh leaves marked, the reading
    statement recomputes (``current_day_figures``), so the answer is exact either way.
    """
    bind = db.get_bind()
    if bind.dialect.name == "sqlite":
        mode = bind.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        in_transaction = db.in_transaction() or (
            isinstance(bind, Connection) and bind.in_transaction()
        )
        if in_transaction and mode == "IMMEDIATE":
            return refresh_pending(db.connection())
    engine = bind.engine if isinstance(bind, Connection) else bind
    return refresh_day_summary(engine)


__all__ = [
    "DAY_FIGURES",
    "KEY_COLUMNS",
    "REFRESH_BATCH_KEYS",
    "RefreshReport",
    "current_day_figures",
    "day_figures",
    "pending_keys",
    "refresh_before_reading",
    "refresh_day_summary",
    "refresh_pending",
]
