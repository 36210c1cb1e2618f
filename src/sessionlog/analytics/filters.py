"""The session filter analysts, the session list and the exports share, and its SQL conditions.

A filter is a validated pydantic model, so the API, the command line and the tests refuse the same bad
input with the same field names; ``session_conditions`` turns it into SQLAlchemy expressions over the
``session`` table that mean the same on SQLite and PostgreSQL. Only the latest version of a session
counts (a correction or a removal is a new row superseding the old one), and removals (status
``entered_in_error``) are left out unless a status filter asks for them, because DESIGN.md §5 makes
removal a status: counting them would count sessions that never happened. Events belong to a
session's whole chain of versions (``store/chains.py``), so an adverse event recorded on an earlier
version counts for the latest one: ``chain_event_parts`` is how every analytics query finds them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import ColumnElement, Select, and_, exists, literal_column, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import col

from sessionlog.errors import InvalidFieldError
from sessionlog.fields import Code, RecordId, UTCTimestamp
from sessionlog.safety.plan import BodySite, Modality
from sessionlog.store.models import Device, SessionChain, SessionEvent, TreatmentSession

SessionStatus = Literal[
    "planned",
    "running",
    "paused",
    "completed",
    "stopped",
    "aborted",
    "interrupted",
    "entered_in_error",
]
"""The statuses a session row can hold (the CHECK constraint of the ``session`` table)."""

SESSION_STATUS_VALUES: tuple[str, ...] = get_args(SessionStatus)
REMOVED_STATUS = "entered_in_error"
ADVERSE_EVENT_KIND = "adverse_event"
MAX_FILTER_VALUES = 100
"""Bound on the values of one list filter: keeps every IN list far below the drivers' parameter limits."""

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class AnalyticsInputError(InvalidFieldError):
    """A filter, group key, sort order or export format that cannot be used; names the field."""


def _date_means_utc_midnight(value: Any) -> Any:
    """Accept ``2026-01-31`` as the start of that day in UTC: analysts type dates, not instants."""
    if isinstance(value, str) and _DATE_ONLY.match(value.strip()):
        return f"{value.strip()}T00:00:00+00:00"
    return value


FilterTimestamp = Annotated[UTCTimestamp, BeforeValidator(_date_means_utc_midnight)]
"""An instant with its zone, or a bare date meaning midnight UTC; a naive date-time is refused."""


class SessionFilter(BaseModel):
    """Which sessions a query, an aggregate or an export covers. Empty lists mean "any"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: FilterTimestamp | None = Field(
        default=None, description="Sessions started at or after this instant (or date, UTC)."
    )
    until: FilterTimestamp | None = Field(
        default=None, description="Sessions started before this instant (or date, UTC)."
    )
    modality: list[Modality] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    client_id: list[RecordId] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    practitioner_id: list[RecordId] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    device_id: list[RecordId] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    driver: list[Code] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    program_id: list[RecordId] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    body_site: list[BodySite] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    status: list[SessionStatus] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    out_of_limits: bool | None = Field(
        default=None, description="Only sessions flagged (true) or not flagged (false)."
    )
    has_adverse_event: bool | None = Field(
        default=None, description="Only sessions with (true) or without (false) an adverse event."
    )

    @field_validator("until")
    @classmethod
    def _until_after_since(cls, until: datetime | None, info: ValidationInfo) -> datetime | None:
        since = info.data.get("since")
        if until is not None and since is not None and until <= since:
            raise ValueError(
                f"must be later than since ({since.isoformat()}): the time range is inverted or empty"
            )
        return until


FILTER_FIELDS: tuple[str, ...] = tuple(SessionFilter.model_fields)


def chain_event_parts(
    what: ColumnElement[Any], kind: str = ADVERSE_EVENT_KIND
) -> tuple[Select[Any], Select[Any], Select[Any]]:
    """Three SELECTs of ``what`` over the events of ``kind`` in the chain of ``session``'s row.

    For a row that is the latest version of its chain (the only rows analytics count): the events
    recorded on the row itself, on its chain's root, and on the chain's other later versions. The
    three are disjoint and together cover the chain; for a session never corrected (nearly every
    one) the last two find no link and read nothing. Each is a plain conjunction on indexed
    columns, so every engine reads it through its indexes, as a count, a sum or an EXISTS.
    """
    s = TreatmentSession
    event = SessionEvent
    # A constant of ours, written into the SQL: the planner sees it as it would hand-written SQL.
    of_kind = col(event.kind) == literal_column(f"'{kind}'")
    own_link = aliased(SessionChain, name="own_link")
    root = select(col(own_link.root_id)).where(col(own_link.session_id) == col(s.id)).correlate(s)
    version_link = aliased(SessionChain, name="version_link")
    own = select(what).select_from(event).where(col(event.session_id) == col(s.id), of_kind)
    # Only a later version has a link, so a session never corrected reads nothing below.
    on_root = (
        select(what)
        .select_from(event)
        .where(col(event.session_id) == root.scalar_subquery(), of_kind)
    )
    on_later = (
        select(what)
        .select_from(event)
        .join(version_link, col(version_link.session_id) == col(event.session_id))
        .where(
            col(version_link.root_id) == root.scalar_subquery(),
            col(version_link.session_id) != col(s.id),
            of_kind,
        )
    )
    return own, on_root, on_later


def is_later_version() -> ColumnElement[bool]:
    """Whether ``session``'s row is a later version of a chain (one primary-key probe).

    Guards the two chain parts of ``chain_event_parts`` in a CASE or an AND: nearly every session
    is a first version, and then one probe replaces their two subqueries.
    """
    link = aliased(SessionChain, name="later_link")
    return exists().where(col(link.session_id) == col(TreatmentSession.id))


def session_conditions(session_filter: SessionFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions on ``session`` for a filter; the same list drives lists, sums and exports."""
    s = TreatmentSession
    conditions: list[ColumnElement[bool]] = []
    f = session_filter
    if f.since is not None:
        conditions.append(col(s.started_at) >= f.since)
    if f.until is not None:
        conditions.append(col(s.started_at) < f.until)
    for column, values in (
        (col(s.modality), [str(m) for m in f.modality]),
        (col(s.client_id), f.client_id),
        (col(s.practitioner_id), f.practitioner_id),
        (col(s.device_id), f.device_id),
        (col(s.program_id), f.program_id),
        (col(s.body_site), [str(b) for b in f.body_site]),
    ):
        if values:
            conditions.append(column.in_(values))
    if f.driver:
        devices = select(col(Device.id)).where(col(Device.driver).in_(f.driver))
        conditions.append(col(s.device_id).in_(devices))
    # Only the latest version of a session counts: a correction or a removal is a new row that
    # supersedes the old one, which keeps its original status.
    newer = aliased(TreatmentSession, name="newer_version")
    conditions.append(~exists().where(col(newer.supersedes_id) == col(s.id)))
    if f.status:
        conditions.append(col(s.status).in_(f.status))
    else:
        # A constant of ours, written into the SQL: the planner sees it as it would hand-written SQL.
        conditions.append(col(s.status) != literal_column(f"'{REMOVED_STATUS}'"))
    if f.out_of_limits is not None:
        conditions.append(col(s.out_of_limits).is_(f.out_of_limits))
    if f.has_adverse_event is not None:
        # Over the session's chain: an adverse event recorded before a correction still counts.
        own, on_root, on_later = chain_event_parts(literal_column("1"))
        adverse = or_(
            own.exists(), and_(is_later_version(), or_(on_root.exists(), on_later.exists()))
        )
        conditions.append(adverse if f.has_adverse_event else ~adverse)
    return conditions
