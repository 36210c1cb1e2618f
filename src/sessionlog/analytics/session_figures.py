"""Per-session SQL expressions that the grouped summary and its day rollup must compute identically.

The summary over ``session`` (``aggregates``) and the rollup that pre-sums it per day
(``day_summary``) both read a session's duration, its adverse-event count and its UTC day. Keeping
those expressions here, once, is what makes a figure from the rollup equal the figure from the base
table. A session's adverse events are those of its whole chain of versions, counted on the latest
version, whichever version they were recorded on (``filters.chain_event_parts``). The expressions
that differ between SQLite and PostgreSQL live in ``duration_s`` and ``day_bounds`` here and in
``aggregates.time_bucket``/``aggregates.period_of_day``, nowhere else.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    ColumnElement,
    Float,
    Select,
    Subquery,
    case,
    cast,
    exists,
    extract,
    func,
    literal_column,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import aliased
from sqlmodel import col

from sessionlog.analytics.filters import ADVERSE_EVENT_KIND, chain_event_parts, is_later_version
from sessionlog.store.models import SessionChain, SessionEvent, TreatmentSession


def sql_constant(constant: str | int) -> ColumnElement[Any]:
    """A constant written into the SQL text rather than bound.

    PostgreSQL accepts a grouped expression in the select list only when it is the same expression as
    in GROUP BY, and two bound parameters are never the same; a constant in the text is.
    """
    return literal_column(str(constant))


def duration_s(dialect: str) -> ColumnElement[float]:
    """Seconds from ``started_at`` to ``ended_at`` (NULL while a session has not ended)."""
    started = col(TreatmentSession.started_at)
    ended = col(TreatmentSession.ended_at)
    if dialect == "sqlite":
        # julianday() is a double of days: good to about 40 µs today, so round to the millisecond.
        seconds = (func.julianday(ended) - func.julianday(started)) * sql_constant("86400.0")
        return type_coerce(func.round(seconds, sql_constant(3)), Float)
    if dialect == "postgresql":
        return cast(extract("epoch", ended - started), Float)
    raise ValueError(f"no duration expression for the {dialect} dialect")


def adverse_events_per_session() -> Subquery:
    """Each latest version's number of adverse events over its chain: a small grouped subquery.

    Adverse events are rare, so each is taken to the latest version of its session's chain and
    counted there: the chain's root (through ``session_chain``) if nothing supersedes it, else the
    root's later version that nothing supersedes. The result joins on the counted session's id
    alone, so a summary still reads only the columns of its covering index. (A chain forked before
    forks were refused has several latest versions; an event counts on each, as
    ``adverse_events_of_chain`` counts it.)
    """
    event = SessionEvent
    event_link = aliased(SessionChain, name="event_link")
    later = aliased(SessionChain, name="later_version")
    successor = aliased(TreatmentSession, name="successor")
    # Joins rather than correlated subqueries: PostgreSQL keeps a plan with them parallel.
    roots = (
        select(func.coalesce(col(event_link.root_id), col(event.session_id)).label("root_id"))
        .select_from(event)
        .outerjoin(event_link, col(event_link.session_id) == col(event.session_id))
        .where(col(event.kind) == sql_constant(f"'{ADVERSE_EVENT_KIND}'"))
        .subquery("adverse_event_roots")
    )
    on_root: Select[Any] = select(roots.c.root_id.label("session_id")).where(
        ~exists().where(col(successor.supersedes_id) == roots.c.root_id)
    )
    on_later: Select[Any] = (
        select(col(later.session_id).label("session_id"))
        .select_from(roots)
        .join(later, col(later.root_id) == roots.c.root_id)
        .where(~exists().where(col(successor.supersedes_id) == col(later.session_id)))
    )
    counted_on = union_all(on_root, on_later).subquery("adverse_event_versions")
    return (
        select(counted_on.c.session_id, func.count().label("adverse_events"))
        .group_by(counted_on.c.session_id)
        .subquery("adverse_per_session")
    )


def adverse_events_of_chain() -> ColumnElement[int]:
    """The adverse events of the chain of the latest version in the enclosing query's ``session``.

    A correlated count through the indexes, for queries that visit the sessions one by one (an
    export page, the rollup's rebuild of a day, a summary on SQLite): the session's own events,
    plus, only for a later version of a chain (one primary-key probe tells), those of the chain's
    other versions.
    """
    own, on_root, on_later = chain_event_parts(func.count())
    earlier = case(
        (is_later_version(), on_root.scalar_subquery() + on_later.scalar_subquery()),
        else_=sql_constant(0),
    )
    return own.scalar_subquery() + earlier


def day_bounds(
    day: ColumnElement[Any], dialect: str
) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[bool] | None]:
    """The ``started_at`` range ``[start, end)`` of a UTC day, and any exact test the range needs.

    The range lets the database read only that day from the index on ``started_at``. On SQLite the
    day of a session is the first ten characters of its stored UTC text (``time_bucket``), so the
    exact test compares those too; on PostgreSQL the range is already exact.
    """
    started = col(TreatmentSession.started_at)
    if dialect == "sqlite":
        # Every stored time of the day starts with its date, and '~' sorts after any character
        # that follows it. (The next day's date would do too, but for 9999-12-31 SQLite has no
        # next day: ``date(day, '+1 day')`` is NULL, and the day would hold no session.)
        end: ColumnElement[Any] = day.op("||")(sql_constant("'~'"))
        return day, end, func.substr(started, sql_constant(1), sql_constant(10)) == day
    if dialect == "postgresql":
        midnight = cast(day, TIMESTAMP)
        start = func.timezone(sql_constant("'UTC'"), midnight)
        end = func.timezone(sql_constant("'UTC'"), midnight + sql_constant("INTERVAL '1 day'"))
        return start, end, None
    raise ValueError(f"no day range for the {dialect} dialect")


__all__ = [
    "adverse_events_of_chain",
    "adverse_events_per_session",
    "day_bounds",
    "duration_s",
    "sql_constant",
]
