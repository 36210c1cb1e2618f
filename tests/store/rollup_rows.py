"""Sessions on chosen days, and the day-rollup marks they leave, for the rollup tests of both layers."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, delete, select

from sessionlog.store.database import session_scope
from sessionlog.store.models import (
    Client,
    Device,
    SessionDaySummaryDirty,
    SessionEvent,
    TreatmentSession,
    User,
)

DIRTY: Table = SessionDaySummaryDirty.__table__  # type: ignore[attr-defined]
Mark = tuple[bool, date, str]
_unique = itertools.count()


@dataclass(frozen=True)
class Refs:
    """The client, practitioner and device every session of a test refers to."""

    client_id: int
    practitioner_id: int
    device_id: int


def make_refs(engine: Engine) -> Refs:
    n = next(_unique)
    with session_scope(engine) as db:
        user = User(username=f"rollup-user-{n}", display_name="U", role="practitioner")
        client = Client(code=f"rollup-client-{n}")
        device = Device(driver="simulated", serial_number=f"ROLLUP-{n}", model="M")
        db.add_all([user, client, device])
        db.flush()
        assert user.id is not None
        assert client.id is not None
        assert device.id is not None
        return Refs(client.id, user.id, device.id)


def session_row(
    refs: Refs,
    *,
    started_at: datetime | None,
    modality: str = "ems",
    status: str = "completed",
    minutes: float | None = 20,
    **values: Any,
) -> TreatmentSession:
    ended = (
        started_at + timedelta(minutes=minutes)
        if started_at is not None and minutes is not None
        else None
    )
    fields: dict[str, Any] = {
        "client_id": refs.client_id,
        "practitioner_id": refs.practitioner_id,
        "device_id": refs.device_id,
        "mode": "recorded",
        "status": status,
        "modality": modality,
        "body_site": "calf" if modality == "ems" else "face",
        "electrode_area_cm2": 25.0,
        "planned_duration_s": 1200,
        "started_at": started_at,
        "ended_at": ended,
        "dose_total_charge_uc": 100.0,
        "dose_on_time_s": 600.0,
        "dose_max_current_density_ma_cm2": 0.5,
        **values,
    }
    return TreatmentSession(**fields)


def add_session(engine: Engine, refs: Refs, **values: Any) -> int:
    """Write one session through the ORM in its own transaction; returns its id."""
    with session_scope(engine) as db:
        row = session_row(refs, **values)
        db.add(row)
        db.flush()
        assert row.id is not None
        return row.id


def add_event(engine: Engine, session_id: int, kind: str, occurred_at: datetime) -> None:
    with session_scope(engine) as db:
        db.add(SessionEvent(session_id=session_id, kind=kind, occurred_at=occurred_at))


def marks(engine: Engine) -> set[Mark]:
    """The distinct keys marked dirty (PostgreSQL may hold a key more than once)."""
    with engine.connect() as connection:
        rows = connection.execute(select(DIRTY.c.started, DIRTY.c.day, DIRTY.c.modality)).all()
    return {(bool(started), day, modality) for started, day, modality in rows}


def clear_marks(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(delete(DIRTY))
