"""A write that loses a race to a concurrent one is refused by the database; the problem still
names the field, from what the database reports (real violations, on each engine)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from sessionlog.api.problems import integrity_field_errors
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import Client, Device


def _violation(engine: Engine, write: Callable[[Session], None]) -> IntegrityError:
    with Session(engine) as db:
        write(db)
        with pytest.raises(IntegrityError) as raised:
            db.flush()
    return raised.value


def test_a_duplicate_unique_value_names_its_field(database_url: str) -> None:
    engine = make_engine(database_url)
    with session_scope(engine) as db:
        db.add(Client(code="C-1"))

    error = _violation(engine, lambda db: db.add(Client(code="C-1")))

    [field] = integrity_field_errors(error)
    assert (field.field, field.reason) == ("code", "is already used by another record")
    engine.dispose()


def test_a_duplicate_of_a_unique_pair_names_both_fields(database_url: str) -> None:
    engine = make_engine(database_url)
    with session_scope(engine) as db:
        db.add(Device(driver="simulated", serial_number="S-1", model="M"))

    error = _violation(
        engine, lambda db: db.add(Device(driver="simulated", serial_number="S-1", model="N"))
    )

    assert [f.field for f in integrity_field_errors(error)] == ["driver", "serial_number"]
    engine.dispose()


def test_a_missing_required_value_names_its_field(database_url: str) -> None:
    engine = make_engine(database_url)

    error = _violation(engine, lambda db: db.add(Client(code=None)))  # type: ignore[arg-type]

    [field] = integrity_field_errors(error)
    assert (field.field, field.reason) == ("code", "may not be empty")
    engine.dispose()
