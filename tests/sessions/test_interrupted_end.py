"""A session a dead process left open ends at its last record, not when the next start found it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from sessionlog.safety import ChannelPlan
from sessionlog.sessions.live import LiveSessions
from sessionlog.sessions.recorder import pack_int32
from sessionlog.settings import Settings
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import SessionChannel, SessionEvent, TelemetryBlock, TreatmentSession
from tests.rows import insert_session

STARTED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _block(
    session_id: int,
    seq: int,
    channel: int,
    t0: datetime,
    offsets_ms: list[int],
    currents: list[int] | None = None,
) -> TelemetryBlock:
    values = pack_int32([1000] * len(offsets_ms))
    return TelemetryBlock(
        session_id=session_id,
        seq=seq,
        channel=channel,
        t0=t0,
        n=len(offsets_ms),
        offsets_ms=pack_int32(offsets_ms),
        current_ua=pack_int32(currents) if currents is not None else values,
        impedance_ohm=values,
    )


def test_an_interrupted_session_ends_at_its_last_sample(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    session_id = insert_session(engine, status="running")
    with session_scope(engine) as db:
        db.add(
            SessionEvent(
                session_id=session_id,
                seq=1,
                kind="state_changed",
                occurred_at=STARTED,
                payload={"from": "planned", "to": "running"},
            )
        )
        # Channel 2's newest block starts earlier than channel 1's yet ends later.
        db.add(_block(session_id, 2, 1, STARTED + timedelta(minutes=4), [0, 500]))
        db.add(_block(session_id, 3, 2, STARTED + timedelta(minutes=3), [0, 90_000]))
    settings = Settings(database_url=database_url, data_dir=tmp_path, auto_migrate=False)

    assert LiveSessions(engine, settings).recover_interrupted() == [session_id]

    with Session(engine) as db:
        stored = db.get(TreatmentSession, session_id)
        assert stored is not None
        assert stored.status == "interrupted"
        assert stored.ended_at == STARTED + timedelta(minutes=4, seconds=30)
        assert stored.end_reason is not None
        assert "it ends at its last record" in stored.end_reason
    engine.dispose()


def test_an_interrupted_session_with_only_events_ends_at_its_last_event(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    session_id = insert_session(engine, status="paused")
    with session_scope(engine) as db:
        for seq, minutes in ((1, 0), (2, 7)):
            db.add(
                SessionEvent(
                    session_id=session_id,
                    seq=seq,
                    kind="note",
                    occurred_at=STARTED + timedelta(minutes=minutes),
                    payload={"text": "x"},
                )
            )
    settings = Settings(database_url=database_url, data_dir=tmp_path, auto_migrate=False)

    LiveSessions(engine, settings).recover_interrupted()

    with Session(engine) as db:
        stored = db.get(TreatmentSession, session_id)
        assert stored is not None
        assert stored.ended_at == STARTED + timedelta(minutes=7)
    engine.dispose()


def test_an_interrupted_session_gets_the_dose_its_measured_current_delivered(
    database_url: str, tmp_path: Path
) -> None:
    """Each sample's current holds until the next (a gap in the record adds nothing) at the
    channel's duty fraction; the last sample's end is unknown and adds nothing."""
    engine = make_engine(database_url)
    session_id = insert_session(engine, status="running")
    channel = ChannelPlan(channel=1, amplitude_ua=20_000, pulse_width_us=250, frequency_hz=40)
    duty = 2 * 250 * 40 / 1_000_000  # biphasic: two phases per pulse
    with session_scope(engine) as db:
        db.add(SessionChannel(session_id=session_id, **channel.model_dump()))
        db.add(_block(session_id, 1, 1, STARTED, [0, 100, 200], currents=[20_000, 20_000, 0]))
        # A minute without a record, then one more reading: the gap holds for two intervals only.
        db.add(
            _block(
                session_id,
                2,
                1,
                STARTED + timedelta(seconds=60),
                [0, 100],
                currents=[10_000, 10_000],
            )
        )
    settings = Settings(database_url=database_url, data_dir=tmp_path, auto_migrate=False)

    LiveSessions(engine, settings).recover_interrupted()

    with Session(engine) as db:
        stored = db.get(TreatmentSession, session_id)
        assert stored is not None
        # 20 mA for 0.1 s twice, 0 mA held 0.2 s across the gap, then 10 mA for 0.1 s.
        assert stored.dose_total_charge_uc == pytest.approx(
            (2 * 20_000 * 0.1 + 10_000 * 0.1) * duty
        )
        assert stored.dose_on_time_s == pytest.approx(0.3)
    engine.dispose()
