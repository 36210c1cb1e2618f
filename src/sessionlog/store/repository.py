"""Generic record access: fetch by id, keyset pages in a stable order, versioned updates.

Routes and services use these instead of writing queries, so paging and version bumps behave the same
on every resource. Keyset paging (``id > last seen``) keeps a page stable while rows are being added,
which offset paging does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement
from sqlmodel import Session, SQLModel, col, select

from sessionlog.store.types import utc_now

Row = TypeVar("Row", bound=SQLModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    last_id: int | None
    has_more: bool


def get(db: Session, model: type[Row], record_id: int) -> Row | None:
    return db.get(model, record_id)


def list_page(
    db: Session,
    model: type[Row],
    *,
    after_id: int | None,
    limit: int,
    where: list[ColumnElement[bool]] | None = None,
) -> Page[Row]:
    id_column = col(model.id)  # type: ignore[attr-defined]
    statement = select(model).order_by(id_column).limit(limit + 1)
    if after_id is not None:
        statement = statement.where(id_column > after_id)
    for condition in where or []:
        statement = statement.where(condition)
    rows = list(db.exec(statement).all())
    has_more = len(rows) > limit
    rows = rows[:limit]
    last_id = rows[-1].id if rows else None  # type: ignore[attr-defined]
    return Page(items=rows, last_id=last_id, has_more=has_more)


def add(db: Session, row: Row) -> Row:
    """Insert ``row`` and give it its id. Every default is set in Python, so nothing needs to be
    read back from the database (no refresh round trip)."""
    db.add(row)
    db.flush()
    return row


def update_versioned(db: Session, row: Row, changes: Mapping[str, Any]) -> Row:
    """Apply ``changes``, bump the row's version and its update time."""
    for name, value in changes.items():
        setattr(row, name, value)
    row.version += 1  # type: ignore[attr-defined]
    row.updated_at = utc_now()
    db.add(row)
    db.flush()
    return row
