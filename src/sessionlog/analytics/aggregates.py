"""Grouped session and dose aggregates, computed by the database in one statement.

The summary groups the filtered sessions by any of a time bucket (day, ISO week, month; UTC), modality,
body site, program, device, practitioner and client, and sums the per-session dose summary stored on
each ``session`` row. Everything is one SELECT: a grouped pass over ``session`` with each session's
adverse-event count (over its chain of versions) joined on its id, so the rows Python sees are the
groups, never the sessions.

A summary grouped only by a time bucket and modality, filtered at most by modality and by a time range
on UTC day boundaries, is answered from the day rollup instead (``day_summary``): the same figures,
re-aggregated from per-day sums, after a refresh of the days written since the last one. Any other
summary reads ``session`` as above. The expressions that differ between SQLite and PostgreSQL live
in ``time_bucket`` and ``period_of_day`` here and in ``session_figures``, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    ColumnElement,
    Date,
    Float,
    Select,
    String,
    case,
    cast,
    func,
    select,
)
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col

from sessionlog.analytics.day_summary import current_day_figures, refresh_before_reading
from sessionlog.analytics.filters import (
    FILTER_FIELDS,
    AnalyticsInputError,
    SessionFilter,
    session_conditions,
)
from sessionlog.analytics.session_figures import (
    adverse_events_of_chain,
    adverse_events_per_session,
    duration_s,
    sql_constant,
)
from sessionlog.store.models import TreatmentSession


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


def time_bucket(key: GroupKey, dialect: str) -> ColumnElement[Any]:
    """The first day of the UTC day, ISO week (Monday) or month of ``started_at``.

    SQLite stores the UTC timestamp as ISO text, so a prefix is the cheapest exact bucket there (and
    ``date(x, 'weekday 0', '-6 days')`` is the Monday of its week), read back as ``YYYY-MM-DD``;
    PostgreSQL truncates the UTC wall-clock time to a DATE. ``summarise`` returns a date either way.
    """
    started = col(TreatmentSession.started_at)
    if dialect == "sqlite":
        if key is GroupKey.DAY:
            return func.substr(started, sql_constant(1), sql_constant(10), type_=String)
        if key is GroupKey.MONTH:
            return func.substr(started, sql_constant(1), sql_constant(7), type_=String).concat(
                sql_constant("'-01'")
            )
        if key is GroupKey.WEEK:
            return func.date(
                started, sql_constant("'weekday 0'"), sql_constant("'-6 days'"), type_=String
            )
    elif dialect == "postgresql":
        units = {GroupKey.DAY: "'day'", GroupKey.WEEK: "'week'", GroupKey.MONTH: "'month'"}
        if key in units:
            utc_wall_clock = func.timezone(sql_constant("'UTC'"), started)
            truncated = func.date_trunc(sql_constant(units[key]), utc_wall_clock)
            return cast(truncated, Date)
    raise ValueError(f"no time bucket {key.value!r} for the {dialect} dialect")


def period_of_day(key: GroupKey, dialect: str, day: ColumnElement[Any]) -> ColumnElement[Any]:
    """The same bucket as ``time_bucket``, from a UTC day (a rollup row's ``day``) instead.

    On SQLite ``day`` is the ``YYYY-MM-DD`` prefix ``time_bucket`` cuts from ``started_at``, so the
    same prefix and date arithmetic give the same text. On PostgreSQL the day is a DATE: it is
    truncated as a plain TIMESTAMP, never through the session's time zone.
    """
    if dialect == "sqlite":
        if key is GroupKey.DAY:
            return cast(day, String)
        if key is GroupKey.MONTH:
            return func.substr(day, sql_constant(1), sql_constant(7), type_=String).concat(
                sql_constant("'-01'")
            )
        if key is GroupKey.WEEK:
            return func.date(
                day, sql_constant("'weekday 0'"), sql_constant("'-6 days'"), type_=String
            )
    elif dialect == "postgresql":
        units = {GroupKey.DAY: "'day'", GroupKey.WEEK: "'week'", GroupKey.MONTH: "'month'"}
        if key is GroupKey.DAY:
            return day
        if key in units:
            return cast(func.date_trunc(sql_constant(units[key]), cast(day, TIMESTAMP)), Date)
    raise ValueError(f"no time bucket {key.value!r} for the {dialect} dialect")


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

    A single grouped pass over the sessions, with each session's adverse-event count over its chain
    of versions: on PostgreSQL a small grouped subquery (adverse events are rare) hash-joined on the
    session's id; on SQLite, which would scan that subquery once per session rather than index it,
    a count per session through the indexes. Means are averages over the sessions that
    have the figure (a session that has not ended has no duration); ``NULLS LAST`` ordering is spelt
    out so both engines return groups in the same order.
    """
    s = TreatmentSession
    conditions = session_conditions(session_filter)
    keys = [_key_expression(k, dialect) for k in group_by]
    duration = duration_s(dialect)
    status = col(s.status)
    # Constants in the SQL text, not bound: the planner then sees the same query as written by hand.
    one, zero = sql_constant(1), sql_constant(0)

    adverse = adverse_events_per_session()
    adverse_events: ColumnElement[Any] = (
        adverse_events_of_chain() if dialect == "sqlite" else adverse.c.adverse_events
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
        "adverse_event_count": func.sum(adverse_events),
        "aborted_count": func.sum(case((status == sql_constant("'aborted'"), one), else_=zero)),
        "interrupted_count": func.sum(
            case((status == sql_constant("'interrupted'"), one), else_=zero)
        ),
        "out_of_limits_count": func.sum(case((col(s.out_of_limits), one), else_=zero)),
    }
    # Sums over no rows are NULL in SQL; a count of nothing is 0.
    columns = [
        (func.coalesce(figures[m], zero) if m.endswith("_count") else figures[m]).label(m)
        for m in METRICS
    ]
    statement = select(*keys, *columns).select_from(s)
    if dialect != "sqlite":
        statement = statement.outerjoin(adverse, adverse.c.session_id == col(s.id))
    return (
        statement.where(*conditions)
        .group_by(*keys)
        .order_by(*[key.asc().nulls_last() for key in keys])
    )


ROLLUP_GROUP_KEYS = frozenset({GroupKey.DAY, GroupKey.WEEK, GroupKey.MONTH, GroupKey.MODALITY})
"""Group keys the day rollup can answer: buckets made of whole UTC days, and its modality."""

ROLLUP_FILTER_FIELDS = frozenset({"since", "until", "modality"})
"""Filters the day rollup can apply; every other filter must be left at its default."""

_UNFILTERED = SessionFilter()


def _on_utc_day_boundary(instant: datetime | None) -> bool:
    return instant is None or instant.astimezone(UTC).time() == time(0)


def rollup_can_answer(session_filter: SessionFilter, group_by: tuple[GroupKey, ...]) -> bool:
    """Whether the day rollup gives exactly the answer the base statement would.

    Its rows sum whole UTC days of counted sessions per modality, so it can answer groups by day,
    week, month and modality, a modality filter, and ``since``/``until`` that fall on UTC midnight
    (a session started on a day at or after ``since``'s day started at or after ``since``). Any
    other filter, including a status filter that would count removed sessions, needs the sessions.
    """
    if not set(group_by) <= ROLLUP_GROUP_KEYS:
        return False
    for name in FILTER_FIELDS:
        if name not in ROLLUP_FILTER_FIELDS and getattr(session_filter, name) != getattr(
            _UNFILTERED, name
        ):
            return False
    return _on_utc_day_boundary(session_filter.since) and _on_utc_day_boundary(session_filter.until)


def rollup_summary_statement(
    session_filter: SessionFilter, group_by: tuple[GroupKey, ...], dialect: str
) -> Select[Any]:
    """The summary re-aggregated from day rows: same columns, order and meaning as ``summary_statement``.

    Totals are sums of the day sums; a mean is the total over the summed count of sessions that
    have the figure (what ``avg`` divides by); the max is the max of the day maxima. Sessions
    without a start time have no day: they form the NULL period, and no time range includes them.
    Only for a query ``rollup_can_answer`` accepts.
    """
    days = current_day_figures(dialect)
    keys = [
        case((days.c.started, period_of_day(k, dialect, days.c.day))).label(PERIOD_COLUMN)
        if k in TIME_KEYS
        else days.c.modality.label("modality")
        for k in group_by
    ]
    zero = sql_constant(0)

    def total(name: str) -> ColumnElement[Any]:
        return func.sum(days.c[name])

    def mean(name: str, count: str) -> ColumnElement[Any]:
        # A plain "/" of the float sum by the integer count, as avg() divides (SQLAlchemy's own
        # division would add casts); NULLIF makes a mean over no values NULL, as avg() is.
        return total(name).op("/", return_type=Float)(func.nullif(total(count), zero))

    figures: dict[str, ColumnElement[Any]] = {
        "session_count": total("session_count"),
        "duration_total_s": total("duration_sum_s"),
        "duration_mean_s": mean("duration_sum_s", "duration_count"),
        "charge_total_uc": total("charge_sum_uc"),
        "charge_mean_uc": mean("charge_sum_uc", "charge_count"),
        "current_density_mean_ma_cm2": mean("current_density_sum_ma_cm2", "current_density_count"),
        "current_density_max_ma_cm2": func.max(days.c.current_density_max_ma_cm2),
        "on_time_total_s": total("on_time_sum_s"),
        "adverse_event_count": total("adverse_event_count"),
        "aborted_count": total("aborted_count"),
        "interrupted_count": total("interrupted_count"),
        "out_of_limits_count": total("out_of_limits_count"),
    }
    conditions: list[ColumnElement[bool]] = []
    if session_filter.modality:
        conditions.append(days.c.modality.in_([str(m) for m in session_filter.modality]))
    since, until = session_filter.since, session_filter.until
    if since is not None or until is not None:
        conditions.append(days.c.started)
    if since is not None:
        conditions.append(days.c.day >= since.astimezone(UTC).date())
    if until is not None:
        conditions.append(days.c.day < until.astimezone(UTC).date())
    columns = [
        (func.coalesce(figures[m], zero) if m.endswith("_count") else figures[m]).label(m)
        for m in METRICS
    ]
    return (
        select(*keys, *columns)
        .select_from(days)
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
    db: Session | OrmSession,
    session_filter: SessionFilter,
    group_by: tuple[GroupKey, ...],
    *,
    use_rollup: bool = True,
) -> list[SummaryRow]:
    """Run the summary; with no group keys the answer is one row covering every matching session.

    A summary the day rollup can answer (``rollup_can_answer``) refreshes the rollup first and reads
    it; the rows are those of the base statement (``use_rollup=False``), the floating-point sums
    equal up to the order in which the database added them.
    """
    bind = db.get_bind()
    dialect = bind.dialect.name
    if use_rollup and rollup_can_answer(session_filter, group_by):
        refresh_before_reading(db)
        statement = rollup_summary_statement(session_filter, group_by, dialect)
    else:
        statement = summary_statement(session_filter, group_by, dialect)
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
    "ROLLUP_FILTER_FIELDS",
    "ROLLUP_GROUP_KEYS",
    "GroupKey",
    "SummaryRow",
    "duration_s",
    "key_columns",
    "parse_group_by",
    "period_of_day",
    "rollup_can_answer",
    "rollup_summary_statement",
    "summarise",
    "summary_statement",
    "time_bucket",
]
