"""A live session keeps running safely while PostgreSQL is unreachable, and loses nothing.

The service's engine reaches the database through a TCP proxy the test cuts and restores; the
device, its driver and the session runner are real. (SQLite cannot be taken away from outside the
process; tests/sessions/test_recorder.py covers its spool path with an injected write failure.)
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from sessionlog.safety import StimulationPlan
from sessionlog.sessions.live import LiveSessions
from sessionlog.sessions.recorder import unpack_int32
from sessionlog.settings import Settings
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import Client, User
from tests.conftest import PostgresDatabases
from tests.sessions.tcp_proxy import TcpProxy
from tests.waiting import wait_until

PLAN = StimulationPlan.model_validate(
    {
        "modality": "ems",
        "duration_s": 600,
        "electrode": {"body_site": "calf", "area_cm2": 40},
        "channels": [{"channel": 1, "amplitude_ma": 15, "pulse_width_us": 300, "frequency_hz": 35}],
    }
)


def test_a_running_session_survives_a_database_outage_and_keeps_every_sample(
    postgres_databases: PostgresDatabases, tmp_path: Path
) -> None:
    name = postgres_databases.create(template=postgres_databases.migrated_template())
    url = make_url(postgres_databases.url_for(name))
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        engine = make_engine(proxied)
        settings = Settings(database_url=proxied, data_dir=tmp_path, auto_migrate=False)
        manager = LiveSessions(engine, settings)
        try:
            with session_scope(engine) as db:
                user, client = (
                    User(username="p", display_name="P", role="practitioner"),
                    Client(code="C"),
                )
                db.add_all([user, client])
                db.flush()
                ids = (user.id, client.id)
            assert ids[0] is not None
            assert ids[1] is not None
            device, connection = manager.connect(
                "simulated", "sim://?channels=1&seed=8&telemetry_hz=50"
            )
            assert device.id is not None
            session_id, _ = manager.create(
                client_id=ids[1], practitioner_id=ids[0], device_id=device.id, plan=PLAN
            )
            runner = manager.runner(session_id)
            emulator = connection.driver.transport.port.emulator  # type: ignore[attr-defined]
            runner.start()
            time.sleep(1.0)

            proxy.cut()
            runner.note("written while the database is away")
            time.sleep(2.0)
            assert runner.state.value == "running"
            assert emulator.output_active
            assert runner.recorder.has_spooled_data
            spooled_while_away = runner.recorder.stats.batches_spooled
            assert spooled_while_away >= 2

            proxy.restore()
            runner.stop()
            assert wait_until(lambda: not runner.recorder.has_spooled_data, timeout_s=10)
        finally:
            manager.shutdown()
        assert wait_until(lambda: _status(engine, session_id) == "stopped", timeout_s=10)
        total_received = runner.recorder.stats.samples_received
        with engine.connect() as db:
            samples = sum(
                len(unpack_int32(bytes(row[0])))
                for row in db.execute(
                    text("SELECT current_ua FROM telemetry_block WHERE session_id = :s"),
                    {"s": session_id},
                )
            )
            kinds = [
                r[0]
                for r in db.execute(
                    text("SELECT kind FROM session_event WHERE session_id = :s ORDER BY seq"),
                    {"s": session_id},
                )
            ]
        engine.dispose()
    assert samples == total_received
    assert "note" in kinds
    assert kinds.count("state_changed") == 2


def _status(engine: object, session_id: int) -> str | None:
    with engine.connect() as db:  # type: ignore[attr-defined]
        return db.execute(
            text("SELECT status FROM session WHERE id = :s"), {"s": session_id}
        ).scalar()  # type: ignore[no-any-return]
