"""Generic record access: fetch by id, keyset pages in a stable order, versioned updates.

Routes and services use these instead of writing queries, so paging and version bumps behave the same
on every resource. Keyset paging (``id > last seen``) keeps a page stable while rows are being added,
which offset paging does not. A versioned update is one conditional UPDATE that the database applies
only to the version the caller read, so two writers of the same version cannot both win.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Table, update
from sqlalchemy.orm.attributes import set_committed_value
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


class StaleVersionError(Exception):
    """The row is no longer at the version the caller read: another writer changed it first."""

    def __init__(self, expected_version: int, current_version: int | None) -> None:
        super().__init__(f"expected version {expected_version}, found {current_version}")
        self.expected_version = expected_version
        self.current_version = current_version


def update_versioned(
    db: Session, row: Row, changes: Mapping[str, Any], *, expected_version: int | None = None
) -> Row:
    """Apply ``changes``, bump the row's version and its update time, in one UPDATE statement.

    With ``expected_version`` the UPDATE matches only that version (``WHERE id = :id AND version =
    :expected``): of two writers that read the same version, the database lets exactly one change
    the row (on PostgreSQL the second waits for the first and then matches nothing), and the other
    gets ``StaleVersionError`` without having written anything. Without it the version is still
    incremented in the database, so concurrent writers never hand out the same version twice.
    ``row`` is updated in place to what was written, without being marked for another flush.
    """
    table: Table = type(row).__table__  # type: ignore[attr-defined]
    row_id = row.id  # type: ignore[attr-defined]
    values = dict(changes)
    values["updated_at"] = utc_now()
    statement = update(table).where(table.c.id == row_id)
    if expected_version is not None:
        statement = statement.where(table.c.version == expected_version)
    db.flush()  # anything pending on this row goes first, so the UPDATE below is the last word
    written = db.execute(
        statement.values(**values, version=table.c.version + 1).returning(table.c.version)
    ).scalar_one_or_none()
    if written is None:
        current = db.execute(select(table.c.version).where(table.c.id == row_id)).scalar()
        raise StaleVersionError(expected_version or 0, current)
    for name, value in values.items():
        set_committed_value(row, name, value)
    set_committed_value(row, "version", written)
    return row
