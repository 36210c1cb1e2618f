"""Minimal rows a store-level test needs: one user, client, device and session."""

from __future__ import annotations

import itertools

from sqlalchemy import Engine

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
