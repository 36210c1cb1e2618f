"""Grouped session and dose aggregates, computed by the database in one statement.

The summary groups the filtered sessions by any of a time bucket (day, ISO week, month; UTC), modality,
body site, program, device, practitioner and client, and sums the per-session dose summary stored on
each ``session`` row. Everything is one SELECT: a grouped CTE over ``session``, a grouped CTE of adverse
events joined back on the group keys, so the rows Python sees are the groups, never the sessions.
The two expressions that differ between SQLite and PostgreSQL (a time bucket, a duration in seconds)
live in ``time_bucket`` and ``duration_s``, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Select,
    String,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col

from sessionlog.analytics.filters import (
    ADVERSE_EVENT_KIND,
    AnalyticsInputError,
    SessionFilter,
    session_conditions,
)
from sessionlog.store.models import SessionEvent, TreatmentSession


class GroupKey(StrEnum):
    """What a summary row can be grouped by."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    MODALITY = "modality"
    BODY_SITE = "body_site"
    PROGRAM = "program"
    DEVICE = "device"
    PRACTITIONER = "practitioner"
    CLIENT = "client"


TIME_KEYS = (GroupKey.DAY, GroupKey.WEEK, GroupKey.MONTH)
PERIOD_COLUMN = "period_start"

_KEY_COLUMNS: dict[GroupKey, str] = {
    GroupKey.MODALITY: "modality",
    GroupKey.BODY_SITE: "body_site",
    GroupKey.PROGRAM: "program_id",
    GroupKey.DEVICE: "device_id",
    GroupKey.PRACTITIONER: "practitioner_id",
    GroupKey.CLIENT: "client_id",
}

METRICS: tuple[str, ...] = (
    "session_count",
    "duration_total_s",
    "duration_mean_s",
    "charge_total_uc",
    "charge_mean_uc",
    "current_density_mean_ma_cm2",
    "current_density_max_ma_cm2",
    "on_time_total_s",
    "adverse_event_count",
    "aborted_count",
    "interrupted_count",
    "out_of_limits_count",
)
"""The summary's figures, each named with its unit; the order of the columns in every summary row."""


def parse_group_by(raw: str | list[str] | tuple[str, ...] | None) -> tuple[GroupKey, ...]:
    """Read ``month,modality`` (or a list of such strings) into group keys, refusing what cannot work.

    Unknown keys, repeated keys and two time buckets at once are refused naming ``group_by``: each
    would give rows an analyst cannot read (a day bucket inside a month bucket says nothing new).
    """
    if raw is None:
        return ()
    parts = [raw] if isinstance(raw, str) else list(raw)
    names = [name.strip() for part in parts for name in part.split(",") if name.strip()]
    allowed = ", ".join(k.value for k in GroupKey)
    keys: list[GroupKey] = []
    for name in names:
        try:
            key = GroupKey(name)
        except ValueError:
            raise AnalyticsInputError(
                "group_by", f"unsupported group key {name!r}; use any of: {allowed}"
            ) from None
        if key in keys:
            raise AnalyticsInputError("group_by", f"group key {name!r} is given twice")
        keys.append(key)
    time_keys = [k.value for k in keys if k in TIME_KEYS]
    if len(time_keys) > 1:
        raise AnalyticsInputError(
            "group_by", f"choose one time bucket, not {' and '.join(time_keys)}"
        )
    return tuple(keys)


def _sql(constant: str | int) -> ColumnElement[Any]:
    """A constant written into the SQL text rather than bound.

    PostgreSQL accepts a grouped expression in the select list only when it is the same expression as
    in GROUP BY, and two bound parameters are never the same; a constant in the text is.
    """
    return literal_column(str(constant))


def time_bucket(key: GroupKey, dialect: str) -> ColumnElement[Any]:
    """The first day of the UTC day, ISO week (Monday) or month of ``started_at``.

    SQLite stores the UTC timestamp as ISO text, so a prefix is the cheapest exact bucket there (and
    ``date(x, 'weekday 0', '-6 days')`` is the Monday of its week), read back as ``YYYY-MM-DD``;
    PostgreSQL truncates the UTC wall-clock time to a DATE. ``summarise`` returns a date either way.
    """
    started = col(TreatmentSession.started_at)
    if dialect == "sqlite":
        if key is GroupKey.DAY:
            return func.substr(started, _sql(1), _sql(10), type_=String)
        if key is GroupKey.MONTH:
            return func.substr(started, _sql(1), _sql(7), type_=String).concat(_sql("'-01'"))
        if key is GroupKey.WEEK:
            return func.date(started, _sql("'weekday 0'"), _sql("'-6 days'"), type_=String)
    elif dialect == "postgresql":
        units = {GroupKey.DAY: "'day'", GroupKey.WEEK: "'week'", GroupKey.MONTH: "'month'"}
        if key in units:
            utc_wall_clock = func.timezone(_sql("'UTC'"), started)
            truncated = func.date_trunc(_sql(units[key]), utc_wall_clock)
            return cast(truncated, Date)
    raise ValueError(f"no time bucket {key.value!r} for the {dialect} dialect")


def duration_s(dialect: str) -> ColumnElement[float]:
    """Seconds from ``started_at`` to ``ended_at`` (NULL while a session has not ended)."""
    started = col(TreatmentSession.started_at)
    ended = col(TreatmentSession.ended_at)
    if dialect == "sqlite":
        # julianday() is a double of days: good to about 40 µs today, so round to the millisecond.
        seconds = (func.julianday(ended) - func.julianday(started)) * _sql("86400.0")
        return type_coerce(func.round(seconds, _sql(3)), Float)
    if dialect == "postgresql":
        return cast(extract("epoch", ended - started), Float)
    raise ValueError(f"no duration expression for the {dialect} dialect")


def _key_expression(key: GroupKey, dialect: str) -> ColumnElement[Any]:
    if key in TIME_KEYS:
        return time_bucket(key, dialect).label(PERIOD_COLUMN)
    return col(getattr(TreatmentSession, _KEY_COLUMNS[key])).label(_KEY_COLUMNS[key])


def key_columns(keys: tuple[GroupKey, ...]) -> list[str]:
    """The names of the group columns a summary row carries, in the order of ``keys``."""
    return [PERIOD_COLUMN if k in TIME_KEYS else _KEY_COLUMNS[k] for k in keys]


def summary_statement(
    session_filter: SessionFilter, group_by: tuple[GroupKey, ...], dialect: str
) -> Select[Any]:
    """The one SELECT that answers a summary: group columns first, then ``METRICS`` in order.

    A single grouped pass over the sessions, with each session's adverse-event count joined on its id
    (a small grouped subquery: adverse events are rare). Means are averages over the sessions that
    have the figure (a session that has not ended has no duration); ``NULLS LAST`` ordering is spelt
    out so both engines return groups in the same order.
    """
    s = TreatmentSession
    conditions = session_conditions(session_filter)
    keys = [_key_expression(k, dialect) for k in group_by]
    duration = duration_s(dialect)
    status = col(s.status)
    # Constants in the SQL text, not bound: the planner then sees the same query as written by hand.
    one, zero = _sql(1), _sql(0)

    adverse = (
        select(
            col(SessionEvent.session_id).label("session_id"),
            func.count().label("adverse_events"),
        )
        .where(col(SessionEvent.kind) == _sql(f"'{ADVERSE_EVENT_KIND}'"))
        .group_by(col(SessionEvent.session_id))
        .subquery("adverse_per_session")
    )
    figures: dict[str, ColumnElement[Any]] = {
        "session_count": func.count(),
        "duration_total_s": func.sum(duration),
        "duration_mean_s": func.avg(duration),
        "charge_total_uc": func.sum(col(s.dose_total_charge_uc)),
        "charge_mean_uc": func.avg(col(s.dose_total_charge_uc)),
        "current_density_mean_ma_cm2": func.avg(col(s.dose_max_current_density_ma_cm2)),
        "current_density_max_ma_cm2": func.max(col(s.dose_max_current_density_ma_cm2)),
        "on_time_total_s": func.sum(col(s.dose_on_time_s)),
        "adverse_event_count": func.sum(adverse.c.adverse_events),
        "aborted_count": func.sum(case((status == _sql("'aborted'"), one), else_=zero)),
        "interrupted_count": func.sum(case((status == _sql("'interrupted'"), one), else_=zero)),
        "out_of_limits_count": func.sum(case((col(s.out_of_limits), one), else_=zero)),
    }
    # Sums over no rows are NULL in SQL; a count of nothing is 0.
    columns = [
        (func.coalesce(figures[m], zero) if m.endswith("_count") else figures[m]).label(m)
        for m in METRICS
    ]
    return (
        select(*keys, *columns)
        .select_from(s)
        .outerjoin(adverse, adverse.c.session_id == col(s.id))
        .where(*conditions)
        .group_by(*keys)
        .order_by(*[key.asc().nulls_last() for key in keys])
    )


@dataclass(frozen=True)
class SummaryRow:
    """One group: its key values by column name, and its figures by metric name."""

    group: dict[str, Any]
    metrics: dict[str, float | int | None]


def _number(metric: str, value: Any) -> float | int | None:
    if value is None:
        return None
    if metric.endswith("_count"):
        return int(value)
    return float(value)


def summarise(
    db: Session | OrmSession, session_filter: SessionFilter, group_by: tuple[GroupKey, ...]
) -> list[SummaryRow]:
    """Run the summary; with no group keys the answer is one row covering every matching session."""
    bind = db.get_bind()
    statement = summary_statement(session_filter, group_by, bind.dialect.name)
    names = key_columns(group_by)
    rows = db.execute(statement).mappings().all()
    result = []
    for row in rows:
        group: dict[str, Any] = {}
        for name in names:
            value = row[name]
            if name == PERIOD_COLUMN and isinstance(value, str):
                value = date.fromisoformat(value)
            group[name] = value
        result.append(SummaryRow(group, {m: _number(m, row[m]) for m in METRICS}))
    return result


__all__ = [
    "METRICS",
    "PERIOD_COLUMN",
    "GroupKey",
    "SummaryRow",
    "duration_s",
    "key_columns",
    "parse_group_by",
    "summarise",
    "summary_statement",
    "time_bucket",
]
