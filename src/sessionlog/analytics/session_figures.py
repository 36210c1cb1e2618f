"""Per-session SQL expressions that the grouped summary and its day rollup must compute identically.

The summary over ``session`` (``aggregates``) and the rollup that pre-sums it per day
(``day_summary``) both read a session's duration, its adverse-event count and its UTC day. Keeping
those expressions here, once, is what makes a figure from the rollup equal the figure from the base
table. The expressions that differ between SQLite and PostgreSQL live in ``duration_s`` and
``day_bounds`` here and in ``aggregates.time_bucket``/``aggregates.period_of_day``, nowhere else.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    ColumnElement,
    Float,
    Subquery,
    cast,
    extract,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlmodel import col

from sessionlog.analytics.filters import ADVERSE_EVENT_KIND
from sessionlog.store.models import SessionEvent, TreatmentSession


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
    """Each session's number of adverse events: a small grouped subquery (adverse events are rare)."""
    return (
        select(
            col(SessionEvent.session_id).label("session_id"),
            func.count().label("adverse_events"),
        )
        .where(col(SessionEvent.kind) == sql_constant(f"'{ADVERSE_EVENT_KIND}'"))
        .group_by(col(SessionEvent.session_id))
        .subquery("adverse_per_session")
    )


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
        end = func.date(day, sql_constant("'+1 day'"))
        return day, end, func.substr(started, sql_constant(1), sql_constant(10)) == day
    if dialect == "postgresql":
        midnight = cast(day, TIMESTAMP)
        start = func.timezone(sql_constant("'UTC'"), midnight)
        end = func.timezone(sql_constant("'UTC'"), midnight + sql_constant("INTERVAL '1 day'"))
        return start, end, None
    raise ValueError(f"no day range for the {dialect} dialect")


__all__ = ["adverse_events_per_session", "day_bounds", "duration_s", "sql_constant"]
