"""A small, fully known session history written through the store, and an app serving analytics.

The expected figures in the tests are computed from ``HISTORY`` with plain Python, independently of
the SQL under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from sessionlog.api.app import API_PREFIX, create_app
from sessionlog.api.routes import analytics
from sessionlog.security.scopes import ROLE_SCOPES
from sessionlog.settings import Settings
from sessionlog.store import repository
from sessionlog.store.database import session_scope
from sessionlog.store.models import (
    Client,
    Device,
    Program,
    SessionChannel,
    SessionEvent,
    TreatmentSession,
    User,
)
from tests.conftest import bearer, create_user


@dataclass(frozen=True)
class Spec:
    """One session of the known history; refs are 0-based indexes into the reference lists."""

    started_at: datetime
    minutes: float | None
    modality: str
    body_site: str
    status: str
    client: int
    practitioner: int
    device: int
    program: int | None
    charge_uc: float | None
    density_ma_cm2: float | None
    on_time_s: float | None
    out_of_limits: bool = False
    adverse_events: int = 0


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


HISTORY: tuple[Spec, ...] = (
    # January 2026: the 5th is a Monday, the 11th a Sunday, the 12th a Monday.
    Spec(
        at("2026-01-05 09:00"),
        20,
        "ems",
        "thigh_anterior",
        "completed",
        0,
        0,
        0,
        0,
        1000.0,
        0.5,
        600,
        False,
        1,
    ),
    Spec(at("2026-01-11 23:30"), 30, "ems", "calf", "aborted", 1, 0, 1, 0, 400.0, 0.25, 200),
    Spec(
        at("2026-01-12 00:10"),
        15,
        "microcurrent",
        "face",
        "completed",
        0,
        1,
        0,
        1,
        2.5,
        0.05,
        900,
        True,
        2,
    ),
    Spec(
        at("2026-01-31 23:59"),
        10,
        "microcurrent",
        "face",
        "interrupted",
        2,
        1,
        0,
        None,
        1.5,
        0.125,
        600,
    ),
    # February 2026
    Spec(
        at("2026-02-01 00:00"),
        25,
        "ems",
        "thigh_anterior",
        "completed",
        2,
        0,
        1,
        0,
        3000.0,
        1.5,
        900,
    ),
    Spec(
        at("2026-02-14 10:00"), 20, "ems", "lower_back", "stopped", 1, 2, 1, None, None, None, None
    ),
    Spec(
        at("2026-02-14 11:00"), None, "microcurrent", "calf", "running", 0, 2, 0, 1, 0.75, 0.02, 300
    ),
    Spec(
        at("2026-02-28 12:00"),
        20,
        "ems",
        "thigh_anterior",
        "completed",
        1,
        0,
        0,
        0,
        1000.0,
        0.5,
        600,
        True,
    ),
    # March 2026, and one removed record that must not count unless asked for.
    Spec(
        at("2026-03-02 08:00"),
        45,
        "ems",
        "calf",
        "completed",
        2,
        1,
        1,
        0,
        5000.0,
        2.5,
        1800,
        False,
        1,
    ),
    Spec(
        at("2026-03-02 09:00"), 20, "ems", "calf", "entered_in_error", 2, 1, 1, 0, 9999.0, 9.0, 999
    ),
)

REMOVED = "entered_in_error"


@dataclass(frozen=True)
class KnownHistory:
    engine: Engine
    ids: list[int]
    """Session ids in HISTORY order."""
    clients: list[int]
    practitioners: list[int]
    devices: list[int]
    programs: list[int]
    drivers: list[str]


def write_history(engine: Engine, tag: str = "") -> KnownHistory:
    """Write HISTORY with fresh reference records; ``tag`` keeps their unique names apart."""
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        clients = [repository.add(db, Client(code=f"C{tag}-{i}")).id for i in range(3)]
        practitioners = [
            repository.add(
                db,
                User(username=f"p{tag}{i}", display_name=f"Practitioner {i}", role="practitioner"),
            ).id
            for i in range(3)
        ]
        drivers = ["simulated", "rehastim2"]
        devices = [
            repository.add(
                db,
                Device(
                    driver=d,
                    serial_number=f"SN{tag}-{i}",
                    model=f"Model {i}",
                    firmware_version="1.0",
                ),
            ).id
            for i, d in enumerate(drivers)
        ]
        programs = [
            repository.add(
                db, Program(name=f"{name}{tag}", modality=modality, channels=[], duration_s=1200)
            ).id
            for name, modality in (("Quadriceps", "ems"), ("Facial", "microcurrent"))
        ]
        ids: list[int] = []
        for spec in HISTORY:
            ended = spec.started_at + timedelta(minutes=spec.minutes) if spec.minutes else None
            row = repository.add(
                db,
                TreatmentSession(
                    client_id=clients[spec.client],
                    practitioner_id=practitioners[spec.practitioner],
                    device_id=devices[spec.device],
                    program_id=programs[spec.program] if spec.program is not None else None,
                    program_name=None,
                    mode="recorded",
                    status=spec.status,
                    modality=spec.modality,
                    body_site=spec.body_site,
                    side="left",
                    electrode_area_cm2=50.0,
                    planned_duration_s=1200,
                    started_at=spec.started_at,
                    ended_at=ended,
                    notes="note text",
                    outcome="tolerated well",
                    out_of_limits=spec.out_of_limits,
                    dose_total_charge_uc=spec.charge_uc,
                    dose_on_time_s=spec.on_time_s,
                    dose_max_current_density_ma_cm2=spec.density_ma_cm2,
                    dose_max_power_density_w_cm2=0.001 if spec.charge_uc is not None else None,
                ),
            )
            assert row.id is not None
            ids.append(row.id)
            db.add(
                SessionChannel(
                    session_id=row.id,
                    channel=1,
                    amplitude_ua=30_000 if spec.modality == "ems" else 300,
                    pulse_width_us=300,
                    frequency_hz=35.0,
                    waveform="rectangular",
                    phase_type="biphasic_symmetric",
                    polarity="alternating",
                )
            )
            for n in range(spec.adverse_events):
                db.add(
                    SessionEvent(
                        session_id=row.id,
                        kind="adverse_event",
                        occurred_at=spec.started_at,
                        payload={"description": f"redness {n}", "severity": "mild"},
                    )
                )
            # A note is an event too, and must not count as an adverse event.
            db.add(
                SessionEvent(session_id=row.id, kind="note", occurred_at=now, payload={"text": "x"})
            )
    return KnownHistory(
        engine=engine,
        ids=ids,
        clients=[c for c in clients if c is not None],
        practitioners=[p for p in practitioners if p is not None],
        devices=[d for d in devices if d is not None],
        programs=[p for p in programs if p is not None],
        drivers=drivers,
    )


@pytest.fixture
def history(engine: Engine) -> KnownHistory:
    return write_history(engine)


@pytest.fixture
def analytics_anonymous(settings: Settings) -> Iterator[TestClient]:
    """The application with the analytics router mounted, on this test's database; no credentials."""
    app = create_app(settings)
    app.include_router(analytics.router, prefix=API_PREFIX)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def analytics_api(analytics_anonymous: TestClient) -> TestClient:
    """Signed in as an analyst, with exactly the scopes of that role."""
    engine = analytics_anonymous.app.state.engine  # type: ignore[attr-defined]
    user_id = create_user(engine, "analyst-tester", "analyst")
    analytics_anonymous.headers.update(
        bearer(analytics_anonymous, user_id, "analyst", ROLE_SCOPES["analyst"])
    )
    return analytics_anonymous
