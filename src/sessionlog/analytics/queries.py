"""Session history pages: a filter, a sort order and keyset paging that stays stable under inserts.

The page query orders by the sort column with NULLs last on both engines, then by id, and continues
after the last row of the previous page (its sort value and id, carried in an opaque cursor). Keyset
paging never skips or repeats a row when sessions are added meanwhile, which offset paging does.
The cursor names its sort order, so a cursor from one order is refused under another.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col

from sessionlog.analytics.filters import AnalyticsInputError, SessionFilter, session_conditions
from sessionlog.fields import MAX_DB_INT
from sessionlog.store.models import TreatmentSession

SORT_FIELDS: dict[str, type] = {
    "id": int,
    "started_at": datetime,
    "ended_at": datetime,
    "client_id": int,
    "practitioner_id": int,
    "device_id": int,
    "modality": str,
    "body_site": str,
    "status": str,
    "dose_total_charge_uc": float,
    "dose_on_time_s": float,
    "dose_max_current_density_ma_cm2": float,
    "dose_max_power_density_w_cm2": float,
}
"""Sortable session columns and the Python type of their values (for reading a cursor back)."""

DEFAULT_SORT = "id"


@dataclass(frozen=True)
class SortOrder:
    field: str
    descending: bool

    @property
    def text(self) -> str:
        return f"-{self.field}" if self.descending else self.field


def parse_sort(raw: str | None) -> SortOrder:
    """Read ``started_at`` (ascending) or ``-started_at`` (descending); unknown fields are refused."""
    text = (raw or DEFAULT_SORT).strip()
    descending = text.startswith("-")
    field = text.removeprefix("-")
    if field not in SORT_FIELDS:
        allowed = ", ".join(SORT_FIELDS)
        raise AnalyticsInputError(
            "sort", f"cannot sort by {field!r}; use one of {allowed}, with '-' for descending"
        )
    return SortOrder(field, descending)


@dataclass(frozen=True)
class Position:
    """Where a page ends: the last row's sort value and id."""

    sort: SortOrder
    value: Any
    last_id: int


def encode_position(position: Position) -> str:
    value = position.value
    if isinstance(value, datetime):
        value = value.isoformat()
    payload = {"after": position.last_id, "sort": position.sort.text, "value": value}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _cursor_error(reason: str = "not a cursor returned by this API") -> AnalyticsInputError:
    return AnalyticsInputError("cursor", reason)


def decode_position(cursor: str, sort: SortOrder) -> Position:
    """Read a cursor back, checking it belongs to ``sort``; anything else is refused naming ``cursor``.

    A cursor without a sort (the form the other list routes return) is an id-order cursor.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError) as error:
        raise _cursor_error() from error
    if not isinstance(data, dict):
        raise _cursor_error()
    after = data.get("after")
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_DB_INT:
        raise _cursor_error()
    cursor_sort = data.get("sort", DEFAULT_SORT)
    if cursor_sort != sort.text:
        raise _cursor_error(f"the cursor belongs to sort {cursor_sort!r}, not {sort.text!r}")
    if sort.field == "id":
        return Position(sort, after, after)
    return Position(sort, _read_value(data.get("value"), SORT_FIELDS[sort.field]), after)


def _read_value(value: Any, kind: type) -> Any:
    """The cursor's sort value as the column's type, or a refusal naming ``cursor``.

    A cursor arrives from the client, so it may be forged: every value is held to what the column
    can hold and the database can compare (a 32-bit integer, a finite float, a timestamp with a zone
    that still exists in UTC, text without NUL or lone surrogates), or the query itself would fail.
    """
    if value is None:
        return None
    if kind is datetime and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _cursor_error() from None
        if parsed.tzinfo is None:
            raise _cursor_error()
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise _cursor_error() from None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise _cursor_error() from None
        if math.isfinite(number):
            return number
    if (
        kind is int
        and isinstance(value, int)
        and not isinstance(value, bool)
        and -MAX_DB_INT - 1 <= value <= MAX_DB_INT
    ):
        return value
    if kind is str and isinstance(value, str) and len(value) <= 200 and _storable(value):
        return value
    raise _cursor_error()


def _storable(text: str) -> bool:
    """Whether ``text`` can be sent to the database: no NUL, and encodable as UTF-8."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _after(position: Position) -> ColumnElement[bool]:
    """Rows strictly after ``position`` in the order (value NULLs last, then id), same direction."""
    id_column = col(TreatmentSession.id)
    desc = position.sort.descending
    id_after = id_column < position.last_id if desc else id_column > position.last_id
    if position.sort.field == "id":
        return id_after
    column = col(getattr(TreatmentSession, position.sort.field))
    if position.value is None:
        return and_(column.is_(None), id_after)
    beyond = column < position.value if desc else column > position.value
    return or_(beyond, and_(column == position.value, id_after), column.is_(None))


@dataclass(frozen=True)
class SessionPage:
    items: list[TreatmentSession]
    next_cursor: str | None


def session_page(
    db: Session | OrmSession,
    session_filter: SessionFilter,
    *,
    sort: SortOrder,
    cursor: str | None,
    limit: int,
) -> SessionPage:
    """One page of sessions matching the filter, in ``sort`` order, after ``cursor``."""
    statement = select(TreatmentSession).where(*session_conditions(session_filter))
    if cursor:
        statement = statement.where(_after(decode_position(cursor, sort)))
    id_column = col(TreatmentSession.id)
    if sort.field == "id":
        order = [id_column.desc() if sort.descending else id_column.asc()]
    else:
        column = col(getattr(TreatmentSession, sort.field))
        direction = column.desc() if sort.descending else column.asc()
        order = [direction.nulls_last(), id_column.desc() if sort.descending else id_column.asc()]
    rows = list(db.execute(statement.order_by(*order).limit(limit + 1)).scalars().all())
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        assert last.id is not None
        value = getattr(last, sort.field)
        next_cursor = encode_position(Position(sort, value, last.id))
    return SessionPage(rows, next_cursor)
