"""Minimal rows a store-level test needs: one user, client, device and session."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import Engine, text

from sessionlog.sessions.recorder import unpack_int32
from sessionlog.store.database import session_scope
from sessionlog.store.models import Client, Device, TreatmentSession, User

_unique = itertools.count()


def insert_session(engine: Engine, *, mode: str = "live", status: str = "running") -> int:
    n = next(_unique)
    with session_scope(engine) as db:
        user = User(username=f"user-{n}", display_name="U", role="practitioner")
        client = Client(code=f"client-{n}")
        device = Device(driver="simulated", serial_number=f"S-{n}", model="M")
        db.add_all([user, client, device])
        db.flush()
        assert user.id is not None
        assert client.id is not None
        assert device.id is not None
        session = TreatmentSession(
            client_id=client.id,
            practitioner_id=user.id,
            device_id=device.id,
            mode=mode,
            status=status,
            modality="ems",
            body_site="calf",
            electrode_area_cm2=25,
            planned_duration_s=600,
        )
        db.add(session)
        db.flush()
        assert session.id is not None
        return session.id


def stored_record(
    engine: Engine, session_id: int, event_column: str = "seq"
) -> tuple[list[Any], list[int]]:
    """One column of the session's events, and every stored current sample, in recorded order."""
    with engine.connect() as connection:
        events = [
            row[0]
            for row in connection.execute(
                text(
                    f"SELECT {event_column} FROM session_event WHERE session_id = :s ORDER BY seq"
                ),
                {"s": session_id},
            )
        ]
        currents: list[int] = []
        for (data,) in connection.execute(
            text("SELECT current_ua FROM telemetry_block WHERE session_id = :s ORDER BY seq"),
            {"s": session_id},
        ):
            currents += unpack_int32(bytes(data))
    return events, currents
