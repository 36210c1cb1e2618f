"""Telemetry persistence benchmarks (run: ``python -m benchmarks.telemetry``).

1. The recorder (buffer → packed block per channel per flush → one transaction) against raw
   ``sqlite3.executemany`` inserting one row per sample, for the same samples, flushed/committed
   once per second of data (8 channels × 20 Hz), both on a WAL SQLite file with the same pragmas.
   Printed as the ratio raw time / recorder time (target ≥ 1.0×: the recorder is at least as fast).
2. End to end: 8 simulated devices streaming through drivers and live sessions at once, samples
   persisted per second.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from sessionlog.hal import TelemetryReading
from sessionlog.safety import StimulationPlan
from sessionlog.sessions.live import LiveSessions
from sessionlog.sessions.recorder import SessionRecorder
from sessionlog.settings import Settings
from sessionlog.store import migrations
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import Client, Device, TreatmentSession, User

CHANNELS = 8
RATE_HZ = 20
PER_SECOND = CHANNELS * RATE_HZ


def _readings(seconds: int) -> list[list[TelemetryReading]]:
    """``seconds`` batches of one second of samples each."""
    batches = []
    for second in range(seconds):
        batch = [
            TelemetryReading(
                channel=1 + i % CHANNELS,
                current_ua=20_000 + i,
                impedance_ohm=1000 + i % 50,
                received_at=second + i / PER_SECOND,
            )
            for i in range(PER_SECOND)
        ]
        batches.append(batch)
    return batches


def raw_executemany_s(folder: Path, batches: list[list[TelemetryReading]]) -> float:
    connection = sqlite3.connect(folder / "raw.sqlite3", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(
        "CREATE TABLE sample (session_id INTEGER, channel INTEGER, t TEXT, current_ua INTEGER, "
        "impedance_ohm INTEGER)"
    )
    start_wall = datetime.now(UTC)
    started = time.perf_counter()
    for batch in batches:
        rows = [
            (1, r.channel, start_wall.isoformat(), r.current_ua, r.impedance_ohm) for r in batch
        ]
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO sample VALUES (?, ?, ?, ?, ?)", rows)
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    count = connection.execute("SELECT count(*) FROM sample").fetchone()[0]
    assert count == sum(len(b) for b in batches)
    connection.close()
    return elapsed


def _session_row(engine: object) -> int:
    with session_scope(engine) as db:  # type: ignore[arg-type]
        user = User(username="bench", display_name="B", role="practitioner")
        client = Client(code="BENCH")
        device = Device(driver="simulated", serial_number="B", model="M")
        db.add_all([user, client, device])
        db.flush()
        session = TreatmentSession(
            client_id=client.id, practitioner_id=user.id, device_id=device.id, mode="live",
            status="running", modality="ems", body_site="calf", electrode_area_cm2=25,
            planned_duration_s=600,
        )  # fmt: skip
        db.add(session)
        db.flush()
        assert session.id is not None
        return session.id


def recorder_s(folder: Path, batches: list[list[TelemetryReading]]) -> float:
    engine = make_engine(f"sqlite:///{folder / 'recorder.sqlite3'}")
    migrations.upgrade(engine)
    session_id = _session_row(engine)
    recorder = SessionRecorder(
        engine, session_id, spool_dir=folder / "spool", flush_interval_s=3600
    )
    started = time.perf_counter()
    for batch in batches:
        for reading in batch:
            recorder.telemetry(reading)
        recorder.flush()
    elapsed = time.perf_counter() - started
    recorder.close()
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT sum(n) FROM telemetry_block")).scalar()
    assert stored == sum(len(b) for b in batches), stored
    engine.dispose()
    return elapsed


def eight_devices_samples_per_s(folder: Path, seconds: float) -> tuple[float, int]:
    settings = Settings(
        data_dir=folder / "e2e",
        database_url=f"sqlite:///{folder / 'e2e.sqlite3'}",
        auto_migrate=True,
    )
    engine = make_engine(settings.effective_database_url)
    migrations.upgrade(engine)
    with session_scope(engine) as db:
        user = User(username="p", display_name="P", role="practitioner")
        client = Client(code="C")
        db.add_all([user, client])
        db.flush()
        user_id, client_id = user.id, client.id
    manager = LiveSessions(engine, settings)
    plan = StimulationPlan.model_validate(
        {
            "modality": "ems",
            "duration_s": 600,
            "electrode": {"body_site": "calf", "area_cm2": 50},
            "channels": [
                {"channel": c, "amplitude_ma": 20, "pulse_width_us": 300, "frequency_hz": 35}
                for c in (1, 2)
            ],
        }
    )
    runners = []
    for n in range(8):
        device, _ = manager.connect(
            "simulated", f"sim://?channels=2&seed={n}&serial_number=B{n}&telemetry_hz=100"
        )
        assert device.id is not None
        assert user_id is not None
        assert client_id is not None
        session_id, _ = manager.create(
            client_id=client_id, practitioner_id=user_id, device_id=device.id, plan=plan
        )
        runners.append(manager.runner(session_id))
    for runner in runners:
        runner.start()
    time.sleep(seconds)
    for runner in runners:
        runner.stop()
    manager.shutdown()
    with engine.connect() as connection:
        stored = int(
            connection.execute(text("SELECT coalesce(sum(n), 0) FROM telemetry_block")).scalar()
            or 0
        )
    engine.dispose()
    return stored / seconds, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds-of-data", type=int, default=600, help="seconds of 8 × 20 Hz telemetry"
    )
    parser.add_argument("--e2e-seconds", type=float, default=5.0)
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds; medians compared"
    )
    args = parser.parse_args()
    batches = _readings(args.seconds_of_data)
    samples = sum(len(b) for b in batches)
    raw_times, our_times = [], []
    for _ in range(args.rounds):  # alternated, so load on the machine hits both alike
        with tempfile.TemporaryDirectory() as folder:
            raw_times.append(raw_executemany_s(Path(folder), batches))
            our_times.append(recorder_s(Path(folder), batches))
    raw, ours = statistics.median(raw_times), statistics.median(our_times)
    with tempfile.TemporaryDirectory() as folder:
        print(
            f"telemetry persisted: {samples:,} samples in {args.seconds_of_data} one-second flushes"
        )
        print(
            f"  raw sqlite3 executemany (row per sample): {raw:.3f} s ({samples / raw:,.0f} samples/s)"
        )
        print(
            f"  recorder (packed blocks):                 {ours:.3f} s ({samples / ours:,.0f} samples/s)"
        )
        ratio = raw / ours
        verdict = "OK" if ratio >= 1.0 else "BELOW TARGET"
        print(f"  ratio recorder/raw speed = {ratio:.2f}x (target >= 1.0x) {verdict}")
        rate, stored = eight_devices_samples_per_s(Path(folder), args.e2e_seconds)
        print(
            f"end to end, 8 simulated devices x 2 channels at 100 Hz: {stored:,} samples "
            f"stored, {rate:,.0f} samples/s"
        )


if __name__ == "__main__":
    main()
