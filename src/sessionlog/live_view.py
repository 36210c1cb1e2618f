"""Running a live session from a terminal: the ``sessionlog run`` and ``sessionlog demo`` commands.

``run`` drives the same ``LiveSessions`` manager the API uses, in this process, and draws a live view
(elapsed and remaining time as a progress bar, output, measured current and impedance per channel,
state). Ctrl-C stops output first and only then exits. ``demo`` serves the API with a simulated
device connected and drives one short session through HTTP, as a practitioner's screen would.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import select

from sessionlog.safety import StimulationPlan
from sessionlog.security.passwords import hash_password
from sessionlog.sessions.live import LiveSessions
from sessionlog.sessions.runner import ENDED, RunnerSnapshot
from sessionlog.settings import Settings
from sessionlog.store import repository
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.migrations import ensure_migrated
from sessionlog.store.models import Client, User

DEMO_PLAN: dict[str, Any] = {
    "modality": "ems",
    "program_name": "Demo: quadriceps activation",
    "duration_s": 20,
    "electrode": {"body_site": "thigh_anterior", "side": "left", "area_cm2": 50},
    "channels": [
        {
            "channel": 1,
            "amplitude_ma": 25,
            "pulse_width_us": 300,
            "frequency_hz": 35,
            "ramp_up_s": 2,
            "ramp_down_s": 2,
        },
        {
            "channel": 2,
            "amplitude_ma": 20,
            "pulse_width_us": 250,
            "frequency_hz": 35,
            "ramp_up_s": 2,
            "ramp_down_s": 2,
            "on_time_s": 5,
            "off_time_s": 3,
        },
    ],
}


def render(snapshot: RunnerSnapshot, duration_s: int, progress: Progress, task: Any) -> Group:
    progress.update(task, completed=min(snapshot.elapsed_s, duration_s))
    table = Table(title=f"session {snapshot.session_id}: {snapshot.state.value}", expand=False)
    for column in ("channel", "target mA", "output mA", "measured mA", "impedance Ω"):
        table.add_column(column, justify="right")
    for channel in sorted(snapshot.target_ua):
        table.add_row(
            str(channel),
            f"{snapshot.target_ua[channel] / 1000:.1f}",
            f"{snapshot.output_ua.get(channel, 0) / 1000:.1f}",
            f"{snapshot.last_current_ua.get(channel, 0) / 1000:.1f}",
            str(snapshot.last_impedance_ohm.get(channel, "-")),
        )
    return Group(progress, table)


def _ensure_people(settings: Settings, client_code: str, practitioner: str) -> tuple[int, int]:
    engine = make_engine(settings.effective_database_url)
    try:
        with session_scope(engine) as db:
            client = db.exec(select(Client).where(Client.code == client_code)).first()
            if client is None:
                client = repository.add(db, Client(code=client_code))
            user = db.exec(select(User).where(User.username == practitioner)).first()
            if user is None:
                user = repository.add(
                    db, User(username=practitioner, display_name=practitioner, role="practitioner")
                )
            assert client.id is not None
            assert user.id is not None
            return client.id, user.id
    finally:
        engine.dispose()


def _create_practitioner(settings: Settings, username: str, password: str) -> int:
    """The demo's own practitioner account, which signs in over HTTP like any user."""
    engine = make_engine(settings.effective_database_url)
    try:
        with session_scope(engine) as db:
            user = repository.add(
                db,
                User(
                    username=username,
                    display_name="Demo practitioner",
                    role="practitioner",
                    password_hash=hash_password(password),
                ),
            )
            assert user.id is not None
            return user.id
    finally:
        engine.dispose()


def run_session(
    settings: Settings,
    *,
    url: str,
    driver: str,
    plan: StimulationPlan,
    client_code: str,
    practitioner: str,
    acknowledged_warnings: frozenset[str],
    console: Console,
) -> str:
    """Run one session to its end with a live view; returns the final state."""
    engine = make_engine(settings.effective_database_url)
    ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
    client_id, practitioner_id = _ensure_people(settings, client_code, practitioner)
    manager = LiveSessions(engine, settings)
    runner = None
    try:
        device, _ = manager.connect(driver, url)
        assert device.id is not None
        console.print(f"connected: {device.model} {device.serial_number} on {url}")
        session_id, _ = manager.create(
            client_id=client_id,
            practitioner_id=practitioner_id,
            device_id=device.id,
            plan=plan,
            acknowledged_warnings=acknowledged_warnings,
        )
        runner = manager.runner(session_id)
        progress = Progress(
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            BarColumn(),
            TextColumn("{task.fields[remaining]} s left"),
        )
        task = progress.add_task("session", total=plan.duration_s, remaining=plan.duration_s)
        runner.start(actor_id=practitioner_id)
        with Live(console=console, refresh_per_second=4) as live:
            while True:
                snapshot = runner.snapshot()
                progress.update(task, remaining=round(snapshot.remaining_s))
                live.update(render(snapshot, plan.duration_s, progress, task))
                if snapshot.state in ENDED:
                    break
                time.sleep(0.25)
        console.print(f"session {session_id} {runner.state.value}: {runner.end_reason}")
        return runner.state.value
    except KeyboardInterrupt:
        if runner is not None:
            runner.emergency_stop(actor_id=practitioner_id)
        console.print("interrupted: output stopped")
        raise
    finally:
        manager.shutdown()
        engine.dispose()


def run_demo(
    settings: Settings, *, host: str, port: int, serve: bool, duration_s: int, console: Console
) -> str:
    """Serve the API, connect a simulated device and drive one session through HTTP."""
    import uvicorn

    from sessionlog.api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    bound_port = server.servers[0].sockets[0].getsockname()[1] if port == 0 else port
    base = f"http://{host}:{bound_port}/api/v1"
    console.print(f"API: {base}  (docs: {base}/docs)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    username, password = f"demo-{stamp}", secrets.token_urlsafe(18)
    practitioner_id = _create_practitioner(settings, username, password)
    try:
        with httpx.Client(base_url=base, timeout=10) as api:
            signed_in = api.post("/auth/token", data={"username": username, "password": password})
            signed_in.raise_for_status()
            api.headers["Authorization"] = f"Bearer {signed_in.json()['access_token']}"
            client = api.post("/clients", json={"code": f"DEMO-{stamp}"}).json()
            device = api.post(
                "/connections", json={"driver": "simulated", "url": "sim://?channels=2&seed=1"}
            ).json()
            plan = {**DEMO_PLAN, "duration_s": duration_s}
            created = api.post(
                "/sessions/live",
                json={
                    "client_id": client["id"],
                    "practitioner_id": practitioner_id,
                    "device_id": device["device"]["id"],
                    "plan": plan,
                },
            )
            if created.status_code != 201:
                raise RuntimeError(f"the demo plan was refused: {created.json().get('detail')}")
            session_id = created.json()["session_id"]
            api.post(f"/sessions/{session_id}/start").raise_for_status()
            console.print(
                f"demo session {session_id} running on the simulated device for {duration_s} s"
            )
            state = "running"
            while state not in ("completed", "stopped", "aborted"):
                time.sleep(1)
                status = api.get(f"/sessions/{session_id}/live").json()
                state = status["state"]
                currents = ", ".join(
                    f"ch{ch} {ua / 1000:.1f} mA"
                    for ch, ua in sorted(status["last_current_ua"].items())
                )
                console.print(f"  {status['elapsed_s']:5.1f} s  {state:9}  {currents}")
            record = api.get(f"/sessions/{session_id}").json()
            events = api.get(f"/sessions/{session_id}/events").json()
            console.print(
                f"recorded: session {session_id} {record['status']}, "
                f"{record['dose']['total_charge_uc']:.0f} µC delivered, {len(events)} events; "
                f"telemetry at {base}/sessions/{session_id}/telemetry"
            )
        if serve:
            console.print("serving; Ctrl-C to stop")
            while thread.is_alive():
                time.sleep(0.5)
        return str(record["status"])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
