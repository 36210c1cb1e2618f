"""A bad telemetry sample, or a write failing for a reason other than the database, loses nothing.

A sample a block cannot store (a value outside int32) is refused on its own and counted; the other
samples, the events and the session-row change of the same batch are written. A write that fails
with any exception keeps its batch, in the spool or, if the spool cannot be written either, in
memory, and the next flush writes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from pytest_mock import MockerFixture
from sqlalchemy import Engine, select, text
from sqlmodel import col

from sessionlog.hal import TelemetryReading
from sessionlog.sessions import recorder as recorder_module
from sessionlog.sessions.recorder import INT32_MAX, SessionRecorder
from sessionlog.store.database import make_engine
from sessionlog.store.models import SessionEvent
from tests.rows import insert_session, stored_record


def _stored(engine: Engine, session_id: int) -> tuple[list[str], list[int], str]:
    """Event kinds, every stored current sample, and the session's status."""
    kinds, currents = stored_record(engine, session_id, "kind")
    with engine.connect() as connection:
        status = connection.execute(
            text("SELECT status FROM session WHERE id = :s"), {"s": session_id}
        ).scalar_one()
    return kinds, currents, str(status)


def _reading(current_ua: int, channel: int = 1, at: float = 0.0) -> TelemetryReading:
    return TelemetryReading(
        channel=channel, current_ua=current_ua, impedance_ohm=1000, received_at=100.0 + at
    )


class Planned(NamedTuple):
    engine: Engine
    session_id: int
    recorder: SessionRecorder


@pytest.fixture
def planned(database_url: str, tmp_path: Path) -> Iterator[Planned]:
    """A planned session with a recorder that flushes only when told to."""
    engine = make_engine(database_url)
    session_id = insert_session(engine, status="planned")
    recorder = SessionRecorder(engine, session_id, spool_dir=tmp_path, flush_interval_s=60)
    try:
        yield Planned(engine, session_id, recorder)
    finally:
        recorder.close()
        engine.dispose()


def test_a_sample_beyond_int32_is_refused_alone(planned: Planned) -> None:
    engine, session_id, recorder = planned
    recorder.event("state_changed", {"to": "running"}, flush=False)
    recorder.update_session({"status": "running"}, flush=False)
    recorder.telemetry(_reading(1000, at=0.0))
    recorder.telemetry(_reading(INT32_MAX + 1, at=0.1))
    recorder.telemetry(_reading(2000, at=0.2))
    recorder.telemetry(_reading(3000, channel=2, at=0.2))
    recorder.telemetry(
        TelemetryReading(channel=2, current_ua=4000, impedance_ohm=-(2**40), received_at=100.3)
    )
    recorder.flush()

    assert not recorder.has_spooled_data
    assert recorder.stats.samples_refused == 2
    assert recorder.stats.samples_received == 5
    kinds, currents, status = _stored(engine, session_id)
    assert kinds == ["state_changed"]
    assert sorted(currents) == [1000, 2000, 3000]
    assert status == "running"


def test_a_write_failing_with_a_non_database_error_keeps_the_batch(
    planned: Planned, mocker: MockerFixture
) -> None:
    engine, session_id, recorder = planned
    real_write = recorder_module._write_batch
    mocker.patch.object(
        recorder_module, "_write_batch", side_effect=TypeError("a value the driver rejects")
    )
    recorder.event("state_changed", {"to": "running"}, flush=False)
    recorder.update_session({"status": "running"}, flush=False)
    recorder.telemetry(_reading(1000))
    recorder.flush()
    assert recorder.has_spooled_data
    assert recorder.stats.write_failures == 1
    assert _stored(engine, session_id) == ([], [], "planned")

    mocker.patch.object(recorder_module, "_write_batch", real_write)
    recorder.flush()
    assert not recorder.has_spooled_data
    assert _stored(engine, session_id) == (["state_changed"], [1000], "running")


def test_a_batch_is_held_in_memory_when_the_spool_cannot_be_written_either(
    planned: Planned, mocker: MockerFixture
) -> None:
    engine, session_id, recorder = planned
    real_write = recorder_module._write_batch
    mocker.patch.object(recorder_module, "_write_batch", side_effect=RuntimeError("bug"))
    spool = mocker.patch.object(recorder, "_spool", side_effect=OSError("disk full"))
    recorder.event("note", {"text": "first"}, flush=False)
    recorder.telemetry(_reading(1000))
    recorder.flush()
    recorder.event("note", {"text": "second"}, flush=False)
    recorder.telemetry(_reading(2000, at=1.0))
    recorder.flush()
    assert recorder.stats.batches_held == 2
    assert recorder.has_spooled_data

    mocker.stop(spool)
    mocker.patch.object(recorder_module, "_write_batch", real_write)
    recorder.event("note", {"text": "third"}, flush=False)
    recorder.flush()
    assert not recorder.has_spooled_data
    assert recorder.stats.batches_held == 0
    kinds, currents, _ = _stored(engine, session_id)
    assert kinds == ["note", "note", "note"]
    assert currents == [1000, 2000]
    with engine.connect() as connection:
        payloads = connection.execute(
            select(col(SessionEvent.payload))
            .where(col(SessionEvent.session_id) == session_id)
            .order_by(col(SessionEvent.seq))
        ).scalars()
        assert [payload["text"] for payload in payloads] == ["first", "second", "third"]
