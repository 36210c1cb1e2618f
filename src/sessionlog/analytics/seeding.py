"""Synthetic session history at scale, for demonstrations, load tests and the analytics benchmark.

``seed_history`` writes realistic sessions of both modalities (programs, body sites, electrode sizes,
amplitudes, durations, statuses, adverse events) for many clients, practitioners and devices. The dose
summary and the out-of-limits flag of every session come from the same ``plan_dose`` and
``check_standard`` the session recorder uses, computed once per distinct plan and reused, so seeded
rows are indistinguishable from recorded ones. Rows go in with multi-row INSERTs in batches of a few
thousand, one transaction per batch; reference records are created once and reused by later runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Table, insert, select

from sessionlog.safety.dose import plan_dose
from sessionlog.safety.limits import check_standard
from sessionlog.safety.plan import StimulationPlan
from sessionlog.store.models import (
    Client,
    Device,
    Program,
    SessionChannel,
    SessionEvent,
    TreatmentSession,
    User,
)

SEED_PREFIX = "seed"
BATCH_SESSIONS = 5000


@dataclass(frozen=True)
class ProgramTemplate:
    """A program as a clinic would define it, with where and how strongly it is applied."""

    name: str
    modality: str
    sites: tuple[str, ...]
    areas_cm2: tuple[float, ...]
    amplitudes_ua: tuple[int, ...]
    pulse_width_us: int
    frequency_hz: float
    channels: int
    on_off_s: tuple[float, float] | None = None
    ramps_s: tuple[float, float] = (0.0, 0.0)
    waveform: str = "rectangular"
    phase_type: str = "biphasic_symmetric"
    durations_s: tuple[int, ...] = (900, 1200, 1500, 1800)


def _ma(low: int, high: int, rare_high: tuple[int, ...] = ()) -> tuple[int, ...]:
    return tuple(v * 1000 for v in range(low, high + 1)) + tuple(v * 1000 for v in rare_high)


PROGRAMS: tuple[ProgramTemplate, ...] = (
    ProgramTemplate(
        "Quadriceps strengthening",
        "ems",
        ("thigh_anterior",),
        (50, 80),
        _ma(20, 60),
        300,
        35,
        2,
        (10, 20),
        (1.5, 1.0),
    ),
    ProgramTemplate(
        "Hamstring activation",
        "ems",
        ("thigh_posterior",),
        (50, 80),
        _ma(20, 55),
        300,
        30,
        2,
        (8, 16),
        (1.5, 1.0),
    ),
    ProgramTemplate("Calf pump", "ems", ("calf",), (25, 50), _ma(15, 40), 250, 20, 1, (5, 10)),
    ProgramTemplate(
        "Lower back relief",
        "ems",
        ("lower_back", "upper_back"),
        (36, 50),
        _ma(10, 35, (90,)),
        200,
        80,
        2,
    ),
    ProgramTemplate(
        "Shoulder rehabilitation",
        "ems",
        ("shoulder", "upper_arm"),
        (25, 36),
        _ma(10, 40),
        250,
        30,
        1,
        (6, 12),
        (1.0, 1.0),
    ),
    ProgramTemplate(
        "Gluteal activation",
        "ems",
        ("gluteal",),
        (50, 80),
        _ma(25, 60),
        350,
        40,
        2,
        (10, 20),
        (2.0, 1.0),
    ),
    ProgramTemplate(
        "Forearm recovery",
        "ems",
        ("forearm", "hand"),
        (9, 16, 25),
        _ma(8, 30, (70,)),
        200,
        25,
        1,
        (5, 10),
        (0.5, 0.5),
    ),
    ProgramTemplate(
        "Knee stabilisation",
        "ems",
        ("knee", "shin"),
        (25, 36),
        _ma(15, 45),
        300,
        35,
        1,
        (8, 16),
        (1.0, 1.0),
    ),
    ProgramTemplate(
        "Facial microcurrent",
        "microcurrent",
        ("face", "cheek", "jaw", "forehead"),
        (2, 4),
        (*range(100, 601, 20), 1200),
        250_000,
        0.5,
        2,
        durations_s=(600, 900, 1200),
    ),
    ProgramTemplate(
        "Wound care microcurrent",
        "microcurrent",
        ("calf", "foot", "shin"),
        (4, 8),
        tuple(range(50, 301, 10)),
        100_000,
        2.0,
        1,
        phase_type="monophasic",
        durations_s=(1800, 2400, 3600),
    ),
    ProgramTemplate(
        "Back pain microcurrent",
        "microcurrent",
        ("lower_back", "neck_posterior"),
        (8, 10),
        tuple(range(100, 801, 25)),
        50_000,
        10.0,
        2,
        durations_s=(900, 1200, 1800),
    ),
)

STATUS_WEIGHTS = (
    ("completed", 880),
    ("stopped", 60),
    ("aborted", 30),
    ("interrupted", 20),
    ("entered_in_error", 10),
)
ADVERSE_EVENT_RATE = 0.008
ADVERSE_EVENTS = (
    ("skin redness under the electrode", "mild"),
    ("muscle soreness after the session", "mild"),
    ("tingling persisting after the session", "mild"),
    ("pain during stimulation, intensity reduced", "moderate"),
    ("superficial skin burn at the electrode edge", "severe"),
)
NOTES = (
    None,
    None,
    None,
    "tolerated well",
    "intensity raised gradually",
    "electrode repositioned after 5 min",
    "client reported fatigue",
)
SIDES = ("left", "right", "bilateral", None)
_END_REASONS = {
    "stopped": "stopped by the practitioner",
    "aborted": "client asked to stop",
    "interrupted": "device link lost",
}


@dataclass(frozen=True)
class SeedReport:
    sessions: int
    channels: int
    adverse_events: int
    clients: int
    practitioners: int
    devices: int
    programs: int
    first_started_at: datetime
    last_started_at: datetime


@dataclass
class _References:
    clients: list[int] = field(default_factory=list)
    practitioners: list[int] = field(default_factory=list)
    dual_devices: list[int] = field(default_factory=list)
    ems_devices: list[int] = field(default_factory=list)
    programs: dict[str, int] = field(default_factory=dict)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _get_or_create(
    engine: Engine,
    model: Any,
    key: str,
    rows: list[dict[str, Any]],
) -> dict[str, int]:
    """Ids of reference rows by their unique ``key``, creating the missing ones; reruns reuse them."""
    table = _table(model)
    wanted = [row[key] for row in rows]
    ids: dict[str, int] = {}
    with engine.begin() as connection:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found = connection.execute(
                select(table.c[key], table.c.id).where(table.c[key].in_(chunk))
            )
            ids.update({str(k): int(i) for k, i in found})
        missing = [row for row in rows if row[key] not in ids]
        if missing:
            connection.execute(insert(table), missing)
            for start in range(0, len(missing), 500):
                chunk = [row[key] for row in missing[start : start + 500]]
                found = connection.execute(
                    select(table.c[key], table.c.id).where(table.c[key].in_(chunk))
                )
                ids.update({str(k): int(i) for k, i in found})
    return ids


def _references(engine: Engine, sessions: int, now: datetime) -> _References:
    stamp = {"created_at": now, "updated_at": now, "version": 1}
    n_clients = max(10, min(50_000, sessions // 25))
    n_practitioners = max(3, min(60, sessions // 5000))
    n_devices = max(2, min(40, sessions // 10_000))
    clients = _get_or_create(
        engine,
        Client,
        "code",
        [
            {"code": f"{SEED_PREFIX.upper()}-C{i:06d}", "contraindications": [], **stamp}
            for i in range(1, n_clients + 1)
        ],
    )
    users = _get_or_create(
        engine,
        User,
        "username",
        [
            {
                "username": f"{SEED_PREFIX}-practitioner-{i:03d}",
                "display_name": f"Practitioner {i:03d}",
                "role": "practitioner",
                "active": True,
                **stamp,
            }
            for i in range(1, n_practitioners + 1)
        ],
    )
    device_rows = [
        {
            "driver": "simulated" if i % 2 else "rehastim2",
            "serial_number": f"{SEED_PREFIX.upper()}-D{i:04d}",
            "model": "Reference stimulator" if i % 2 else "RehaStim 2",
            "firmware_version": "1.4.2" if i % 2 else "2.0.1",
            **stamp,
        }
        for i in range(1, n_devices + 1)
    ]
    devices = _get_or_create(engine, Device, "serial_number", device_rows)
    programs = _get_or_create(
        engine,
        Program,
        "name",
        [
            {
                "name": p.name,
                "modality": p.modality,
                "channels": [
                    c.model_dump(mode="json")
                    for c in _plan(p, p.amplitudes_ua[0], p.durations_s[0], p.areas_cm2[0]).channels
                ],
                "duration_s": p.durations_s[0],
                **stamp,
            }
            for p in PROGRAMS
        ],
    )
    refs = _References(
        clients=sorted(clients.values()),
        practitioners=sorted(users.values()),
        programs=programs,
    )
    for row in device_rows:
        device_id = devices[str(row["serial_number"])]
        (refs.dual_devices if row["driver"] == "simulated" else refs.ems_devices).append(device_id)
    return refs


def _plan(
    p: ProgramTemplate, amplitude_ua: int, duration_s: int, area_cm2: float
) -> StimulationPlan:
    channel: dict[str, Any] = {
        "amplitude_ua": amplitude_ua,
        "pulse_width_us": p.pulse_width_us,
        "frequency_hz": p.frequency_hz,
        "waveform": p.waveform,
        "phase_type": p.phase_type,
        "polarity": "positive" if p.phase_type == "monophasic" else "alternating",
        "ramp_up_s": p.ramps_s[0],
        "ramp_down_s": p.ramps_s[1],
    }
    if p.on_off_s:
        channel["on_time_s"], channel["off_time_s"] = p.on_off_s
    return StimulationPlan.model_validate(
        {
            "modality": p.modality,
            "duration_s": duration_s,
            "electrode": {"body_site": p.sites[0], "area_cm2": area_cm2},
            "channels": [{"channel": n, **channel} for n in range(1, p.channels + 1)],
            "program_name": p.name,
        }
    )


@lru_cache(maxsize=65_536)
def _dose_of(
    program_index: int, amplitude_ua: int, duration_s: int, area_cm2: float
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Dose columns, violations and channel rows of one distinct plan: computed once, reused."""
    plan = _plan(PROGRAMS[program_index], amplitude_ua, duration_s, area_cm2)
    dose = plan_dose(plan)
    violations = [v.model_dump(mode="json") for v in check_standard(plan)]
    columns = {
        "dose_total_charge_uc": dose.total_charge_uc,
        "dose_on_time_s": dose.on_time_s,
        "dose_max_current_density_ma_cm2": dose.max_current_density_ma_per_cm2,
        "dose_max_power_density_w_cm2": dose.max_power_density_w_per_cm2,
    }
    channels = [c.model_dump(mode="json") for c in plan.channels]
    return columns, violations, channels


def seed_history(
    engine: Engine,
    *,
    sessions: int,
    days: int = 730,
    end: datetime | None = None,
    seed: int = 1,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Write ``sessions`` synthetic sessions spread over ``days`` days before ``end`` (UTC).

    The same ``seed`` gives the same history. Sessions are written in time order (as a clinic
    records them), one transaction per batch, so an interrupted run leaves whole batches behind.
    """
    if sessions < 1:
        raise ValueError("sessions must be at least 1")
    if days < 1:
        raise ValueError("days must be at least 1")
    now = datetime.now(UTC)
    end = (end or now).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    rng = random.Random(seed)  # noqa: S311  (synthetic data, reproducible on purpose)
    refs = _references(engine, sessions, now)
    statuses = [s for s, _ in STATUS_WEIGHTS]
    status_weights = [w for _, w in STATUS_WEIGHTS]
    session_table = _table(TreatmentSession)
    channel_table = _table(SessionChannel)
    event_table = _table(SessionEvent)
    written = channels_written = events_written = 0
    first_started: datetime | None = None
    last_started = start

    for batch_start in range(0, sessions, BATCH_SESSIONS):
        batch_end = min(sessions, batch_start + BATCH_SESSIONS)
        session_rows: list[dict[str, Any]] = []
        plan_channels: list[list[dict[str, Any]]] = []
        adverse: list[tuple[int, datetime, int]] = []
        for i in range(batch_start, batch_end):
            program_index = rng.randrange(len(PROGRAMS))
            p = PROGRAMS[program_index]
            amplitude = rng.choice(p.amplitudes_ua)
            planned_s = rng.choice(p.durations_s)
            area = rng.choice(p.areas_cm2)
            dose, violations, channels = _dose_of(program_index, amplitude, planned_s, area)
            day = start + timedelta(days=i * days // sessions)
            started = day + timedelta(seconds=rng.randrange(7 * 3600, 19 * 3600))
            status = rng.choices(statuses, status_weights)[0]
            actual_s = (
                planned_s if status == "completed" else int(planned_s * rng.uniform(0.1, 0.9))
            )
            client_id = rng.choice(refs.clients)
            devices = (
                refs.dual_devices
                if p.modality == "microcurrent" or not refs.ems_devices
                else (refs.dual_devices + refs.ems_devices)
            )
            session_rows.append(
                {
                    "client_id": client_id,
                    "practitioner_id": rng.choice(refs.practitioners),
                    "device_id": rng.choice(devices),
                    "program_id": refs.programs[p.name],
                    "supersedes_id": None,
                    "program_name": p.name,
                    "mode": "live" if rng.random() < 0.3 else "recorded",
                    "status": status,
                    "modality": p.modality,
                    "body_site": rng.choice(p.sites),
                    "side": rng.choice(SIDES),
                    "electrode_area_cm2": area,
                    "planned_duration_s": planned_s,
                    "started_at": started,
                    "ended_at": started + timedelta(seconds=actual_s),
                    "notes": rng.choice(NOTES),
                    "outcome": "tolerated well" if status == "completed" else None,
                    "out_of_limits": bool(violations),
                    "violations": violations,
                    "end_reason": _END_REASONS.get(status),
                    "link_errors": {},
                    "created_at": started + timedelta(seconds=actual_s),
                    **dose,
                }
            )
            plan_channels.append(channels)
            if rng.random() < ADVERSE_EVENT_RATE:
                adverse.append(
                    (
                        len(session_rows) - 1,
                        started + timedelta(seconds=actual_s // 2),
                        rng.randrange(len(ADVERSE_EVENTS)),
                    )
                )
            first_started = first_started or started
            last_started = max(last_started, started)

        with engine.begin() as connection:
            ids = (
                connection.execute(
                    insert(session_table).returning(
                        session_table.c.id, sort_by_parameter_order=True
                    ),
                    session_rows,
                )
                .scalars()
                .all()
            )
            channel_rows = [
                {"session_id": session_id, **channel}
                for session_id, channels in zip(ids, plan_channels, strict=True)
                for channel in channels
            ]
            connection.execute(insert(channel_table), channel_rows)
            if adverse:
                event_rows = [
                    {
                        "session_id": ids[index],
                        "kind": "adverse_event",
                        "occurred_at": occurred,
                        "recorded_at": occurred,
                        "actor_id": session_rows[index]["practitioner_id"],
                        "payload": {
                            "description": ADVERSE_EVENTS[which][0],
                            "severity": ADVERSE_EVENTS[which][1],
                        },
                    }
                    for index, occurred, which in adverse
                ]
                connection.execute(insert(event_table), event_rows)
        written += len(session_rows)
        channels_written += len(channel_rows)
        events_written += len(adverse)
        if progress:
            progress(len(session_rows))

    return SeedReport(
        sessions=written,
        channels=channels_written,
        adverse_events=events_written,
        clients=len(refs.clients),
        practitioners=len(refs.practitioners),
        devices=len(refs.dual_devices) + len(refs.ems_devices),
        programs=len(refs.programs),
        first_started_at=first_started or start,
        last_started_at=last_started,
    )


__all__ = ["PROGRAMS", "SeedReport", "seed_history"]
