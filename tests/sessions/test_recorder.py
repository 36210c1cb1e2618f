"""The recorder loses nothing and duplicates nothing, including while the database is away.

On PostgreSQL the outage is real: the recorder's engine goes through a TCP proxy the test cuts and
restores. SQLite cannot be made unreachable from outside the process, so there the write itself is
made to fail (pytest-mock), which exercises the same spool-and-replay path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_mock import MockerFixture
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from sessionlog.hal import TelemetryReading
from sessionlog.sessions import recorder as recorder_module
from sessionlog.sessions.live import LiveSessions
from sessionlog.sessions.recorder import SessionRecorder, unpack_int32
from sessionlog.settings import Settings
from sessionlog.store.database import make_engine
from sessionlog.store.models import SessionEvent, TelemetryBlock, TreatmentSession
from tests.rows import insert_session, stored_record
from tests.sessions.tcp_proxy import TcpProxy
from tests.waiting import wait_until


def _stored(engine: Engine, session_id: int) -> tuple[list[int], list[int]]:
    """Event sequence numbers and every stored current sample, in order."""
    return stored_record(engine, session_id)


def _feed(recorder: SessionRecorder, values: range) -> None:
    for value in values:
        recorder.telemetry(
            TelemetryReading(channel=1 + value % 2, current_ua=value, impedance_ohm=1000)
        )


@pytest.fixture
def outage(
    database_url: str, mocker: MockerFixture
) -> Iterator[tuple[Engine, Callable[[], None], Callable[[], None]]]:
    """An engine for the recorder, and the calls that take its database away and bring it back."""
    if database_url.startswith("sqlite"):
        engine = make_engine(database_url)
        real_insert = recorder_module._insert_ignoring_duplicates

        def cut() -> None:
            mocker.patch.object(
                recorder_module,
                "_insert_ignoring_duplicates",
                side_effect=OperationalError("INSERT", {}, Exception("database is unreachable")),
            )

        def restore() -> None:
            mocker.patch.object(recorder_module, "_insert_ignoring_duplicates", real_insert)

        yield engine, cut, restore
        engine.dispose()
        return
    url = make_url(database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        engine = make_engine(
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        )
        yield engine, proxy.cut, proxy.restore
        engine.dispose()


def test_telemetry_and_events_survive_a_database_outage_once_each(
    outage: tuple[Engine, Callable[[], None], Callable[[], None]], tmp_path: Path
) -> None:
    engine, cut, restore = outage
    session_id = insert_session(engine)
    recorder = SessionRecorder(engine, session_id, spool_dir=tmp_path, flush_interval_s=60)
    try:
        recorder.event("state_changed", {"to": "running"})
        _feed(recorder, range(0, 100))
        recorder.flush()

        cut()
        recorder.event("note", {"text": "written while the database is away"})
        _feed(recorder, range(100, 250))
        recorder.flush()
        assert recorder.has_spooled_data
        assert recorder.stats.batches_spooled >= 1
        recorder.event("note", {"text": "still away"}, flush=True)

        restore()
        _feed(recorder, range(250, 300))
        recorder.flush()
        assert not recorder.has_spooled_data
    finally:
        recorder.close()

    seqs, currents = _stored(engine, session_id)
    assert len(seqs) == 3
    assert seqs == sorted(set(seqs))
    assert sorted(currents) == list(range(300))


def test_a_replayed_batch_that_was_already_written_is_not_duplicated(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    try:
        session_id = insert_session(engine)
        recorder = SessionRecorder(engine, session_id, spool_dir=tmp_path, flush_interval_s=60)
        recorder.event("note", {"text": "once"}, flush=False)
        _feed(recorder, range(40))
        batch = recorder._take_batch()
        assert batch is not None
        recorder._write(batch)
        # A crash after the write but before the spool was cleared leaves the batch in the spool.
        (tmp_path / f"session-{session_id}.jsonl").write_text(
            json.dumps(recorder_module._to_json(batch)) + "\n"
        )
        recorder.flush()
        recorder.close()
        seqs, currents = _stored(engine, session_id)
        assert len(seqs) == 1
        assert sorted(currents) == list(range(40))
    finally:
        engine.dispose()


def test_memory_is_bounded_under_back_pressure(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    try:
        session_id = insert_session(engine)
        recorder = SessionRecorder(
            engine, session_id, spool_dir=tmp_path, flush_interval_s=60, max_buffered_samples=100
        )
        _feed(recorder, range(1000))
        recorder.close()
        assert recorder.stats.samples_received == 1000
        _, currents = _stored(engine, session_id)
        assert sorted(currents) == list(range(1000))
    finally:
        engine.dispose()


def test_a_torn_last_spool_line_is_skipped_and_the_rest_replayed(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    try:
        session_id = insert_session(engine)
        recorder = SessionRecorder(engine, session_id, spool_dir=tmp_path, flush_interval_s=60)
        _feed(recorder, range(10))
        batch = recorder._take_batch()
        (tmp_path / f"session-{session_id}.jsonl").write_text(
            json.dumps(recorder_module._to_json(batch)) + "\n" + '{"events": ['
        )
        recorder.close()
        _, currents = _stored(engine, session_id)
        assert sorted(currents) == list(range(10))
    finally:
        engine.dispose()


def test_written_rows_read_back_through_the_models_exactly(
    database_url: str, tmp_path: Path
) -> None:
    """The recorder's compiled inserts store what the ORM reads back: UTC times, JSON, arrays."""
    engine = make_engine(database_url)
    session_id = insert_session(engine)
    recorder = SessionRecorder(engine, session_id, spool_dir=tmp_path, flush_interval_s=60)
    occurred = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
    payload = {"text": "ölçü 5 µA", "nested": {"values": [1, 2.5, None, True]}}
    try:
        recorder.event("note", payload, occurred_at=occurred, flush=False)
        for offset_ms, current in ((0, 1500), (50, 1600), (100, 1700)):
            recorder.telemetry(
                TelemetryReading(
                    channel=2,
                    current_ua=current,
                    impedance_ohm=900 + offset_ms,
                    received_at=100.0 + offset_ms / 1000,
                )
            )
        recorder.flush()
        expected_t0 = recorder.wall_time(100.0)
    finally:
        recorder.close()
    with Session(engine) as db:
        event = db.exec(select(SessionEvent).where(SessionEvent.session_id == session_id)).one()
        block = db.exec(select(TelemetryBlock).where(TelemetryBlock.session_id == session_id)).one()
    engine.dispose()
    assert (event.kind, event.payload, event.occurred_at) == ("note", payload, occurred)
    assert event.seq < block.seq
    assert (block.channel, block.n, block.t0) == (2, 3, expected_t0)
    assert unpack_int32(bytes(block.offsets_ms)) == [0, 50, 100]
    assert unpack_int32(bytes(block.current_ua)) == [1500, 1600, 1700]
    assert unpack_int32(bytes(block.impedance_ohm)) == [900, 950, 1000]


def _status(engine: Engine, session_id: int) -> str:
    with engine.connect() as connection:
        status: str = connection.execute(
            text("SELECT status FROM session WHERE id = :s"), {"s": session_id}
        ).scalar_one()
    return status


def test_session_row_changes_spooled_in_an_outage_are_applied_when_it_ends(
    outage: tuple[Engine, Callable[[], None], Callable[[], None]], tmp_path: Path
) -> None:
    """A session that ends while the database is away gets its end written once it is back."""
    engine, cut, restore = outage
    session_id = insert_session(engine, status="planned")
    recorder = SessionRecorder(engine, session_id, spool_dir=tmp_path, flush_interval_s=0.05)
    recorder.update_session({"status": "running", "started_at": datetime.now(UTC)})
    assert _status(engine, session_id) == "running"
    cut()
    ended_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    recorder.update_session({"status": "paused"})
    recorder.event("state_changed", {"to": "completed"}, flush=False)
    recorder.update_session(
        {"status": "completed", "ended_at": ended_at, "end_reason": "planned duration reached"},
        flush=False,
    )
    recorder.close()  # the database is still away: everything is spooled, nothing is lost
    assert recorder.has_spooled_data
    restore()
    assert wait_until(lambda: not recorder.has_spooled_data, timeout_s=10)
    with Session(engine) as db:
        stored = db.get(TreatmentSession, session_id)
        assert stored is not None
        assert (stored.status, stored.end_reason, stored.ended_at) == (
            "completed",
            "planned duration reached",
            ended_at,
        )
        assert stored.started_at is not None
        kinds = [
            e.kind
            for e in db.exec(select(SessionEvent).where(SessionEvent.session_id == session_id))
        ]
    assert kinds == ["state_changed"]


def test_a_replayed_change_never_touches_a_session_that_has_ended(
    database_url: str, tmp_path: Path
) -> None:
    """Changes apply only to an open session and never overwrite the first start time."""
    engine = make_engine(database_url)
    session_id = insert_session(engine, status="planned")
    first_start = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
    recorder = SessionRecorder(engine, session_id, spool_dir=tmp_path, flush_interval_s=60)
    try:
        recorder.update_session({"status": "running", "started_at": first_start})
        recorder.update_session({"status": "running", "started_at": datetime.now(UTC)})
        recorder.update_session(
            {"status": "stopped", "ended_at": datetime(2030, 5, 1, 9, 10, tzinfo=UTC)}
        )
        # What a replay after a crash would send again: refused by nothing, applied to nothing.
        recorder.update_session({"status": "paused"})
        recorder.update_session({"status": "interrupted", "end_reason": "late"})
    finally:
        recorder.close()
    assert not recorder.has_spooled_data
    with Session(engine) as db:
        stored = db.get(TreatmentSession, session_id)
        assert stored is not None
        assert (stored.status, stored.started_at, stored.end_reason) == (
            "stopped",
            first_start,
            None,
        )
    engine.dispose()


def test_a_restart_writes_a_spooled_end_instead_of_marking_the_session_interrupted(
    outage: tuple[Engine, Callable[[], None], Callable[[], None]],
    database_url: str,
    tmp_path: Path,
) -> None:
    """The service stops while a session's end is still spooled: the next start writes that end."""
    engine, cut, restore = outage
    settings = Settings(database_url=database_url, data_dir=tmp_path, auto_migrate=False)
    ended_in_outage = insert_session(engine, status="running")
    left_running = insert_session(engine, status="running")
    # A long retry interval: nothing but the restart below writes the spool.
    recorder = SessionRecorder(
        engine, ended_in_outage, spool_dir=tmp_path / "spool", flush_interval_s=600
    )
    cut()
    recorder.event("state_changed", {"from": "running", "to": "completed"}, flush=False)
    recorder.update_session(
        {"status": "completed", "ended_at": datetime.now(UTC), "end_reason": "duration reached"},
        flush=False,
    )
    recorder.close()
    assert recorder.has_spooled_data
    restore()

    recovered = LiveSessions(engine, settings).recover_interrupted()

    assert recovered == [left_running]
    with Session(engine) as db:
        ended = db.get(TreatmentSession, ended_in_outage)
        interrupted = db.get(TreatmentSession, left_running)
        assert ended is not None
        assert interrupted is not None
        assert (ended.status, ended.end_reason) == ("completed", "duration reached")
        assert interrupted.status == "interrupted"
        assert interrupted.end_reason is not None
        assert "running" in interrupted.end_reason
    assert not recorder.has_spooled_data


def test_what_is_recorded_after_a_first_close_is_written_by_the_next(
    database_url: str, tmp_path: Path
) -> None:
    """Shutdown may close a recorder before the session's end is recorded on another thread."""
    engine = make_engine(database_url)
    session_id = insert_session(engine, status="running")
    recorder = SessionRecorder(engine, session_id, spool_dir=tmp_path, flush_interval_s=60)
    recorder.close()
    recorder.event("state_changed", {"to": "stopped"}, flush=False)
    recorder.update_session({"status": "stopped", "ended_at": datetime.now(UTC)}, flush=False)
    recorder.close()
    assert _status(engine, session_id) == "stopped"
    with Session(engine) as db:
        kinds = [
            e.kind
            for e in db.exec(select(SessionEvent).where(SessionEvent.session_id == session_id))
        ]
    engine.dispose()
    assert kinds == ["state_changed"]
