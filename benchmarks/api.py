"""Session create over HTTP against a real uvicorn server (run: ``python -m benchmarks.api``).

What the hardening costs: ``POST /api/v1/sessions`` with everything on (bearer token and the account
check behind it, scope check, the audit event chained in the same transaction, the Idempotency-Key
looked up and stored with the record) against a bare endpoint on the same server that records the
same session the same way (validation, standard-limits flagging, dose, the insert, the same response
document) with auth, audit and idempotency off. Measured alternately in the same run and printed as
the ratio of request rates (target ≥ 0.5×).

For scale, a third endpoint that only parses the JSON body and echoes it is measured too: the ratio
against it is what recording a session costs over HTTP at all, hardening included.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import Request

from sessionlog.api.app import create_app
from sessionlog.schemas import SessionPublic, SessionRecordCreate
from sessionlog.security.passwords import hash_password
from sessionlog.sessions import records
from sessionlog.settings import Settings
from sessionlog.store import migrations
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import Client, Device, User

PASSWORD = "benchmark password"


def _body(ids: dict[str, int]) -> dict[str, Any]:
    return {
        **ids,
        "plan": {
            "modality": "ems",
            "duration_s": 1200,
            "electrode": {"body_site": "thigh_anterior", "area_cm2": 50},
            "channels": [
                {"channel": 1, "amplitude_ma": 30, "pulse_width_us": 300, "frequency_hz": 35}
            ],
        },
        "started_at": "2026-11-20T09:00:00+01:00",
        "ended_at": "2026-11-20T09:20:00+01:00",
        "outcome": "tolerated well",
    }


def serve(database_url: str, data_dir: str, port: int) -> None:
    """The server process: the real app plus one bare endpoint, under uvicorn."""
    settings = Settings(data_dir=Path(data_dir), database_url=database_url, auto_migrate=True)
    app = create_app(settings)

    @app.post("/bench/bare", status_code=201, response_model=SessionPublic)
    def bare(data: SessionRecordCreate, request: Request) -> Any:
        with session_scope(request.app.state.engine) as db:  # the app's own engine and pool
            session = records.record_standalone_session(db, data)
            return records.to_public(db, session, just_written=data.plan)

    @app.post("/bench/echo")
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--serve", nargs=3, metavar=("URL", "DATA_DIR", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return
    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite:///{folder}/bench.sqlite3"
        engine = make_engine(database_url)
        migrations.upgrade(engine)
        with session_scope(engine) as db:
            user = User(
                username="bench",
                display_name="B",
                role="practitioner",
                password_hash=hash_password(PASSWORD),
            )
            client, device = (
                Client(code="BENCH"),
                Device(driver="simulated", serial_number="B", model="M"),
            )
            db.add_all([user, client, device])
            db.flush()
            ids = {"practitioner_id": user.id, "client_id": client.id, "device_id": device.id}
        engine.dispose()
        port = _free_port()
        server = subprocess.Popen(  # the server in its own process, as deployed
            [sys.executable, "-m", "benchmarks.api", "--serve", database_url, folder, str(port)]
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/api/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start")
                time.sleep(0.1)
            rates = _measure(base, _body(ids), args.requests, args.rounds)  # type: ignore[arg-type]
        finally:
            server.terminate()
            server.wait(timeout=10)
    full, bare, echo = (statistics.median(rates[name]) for name in ("full", "bare", "echo"))
    ratio = full / bare
    print(f"session create, auth + audit + idempotency on: {full:,.0f} requests/s")
    print(f"session create, bare (all three off):          {bare:,.0f} requests/s")
    print(f"  ratio = {ratio:.2f}x (target >= 0.5x) {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")
    print(f"echo of the same body, for scale:              {echo:,.0f} requests/s")
    print(f"  session create with hardening / echo = {full / echo:.2f}x")


def _measure(base: str, body: dict[str, Any], requests: int, rounds: int) -> dict[str, list[float]]:
    with httpx.Client(base_url=base, timeout=30) as http:
        token = http.post("/api/v1/auth/token", data={"username": "bench", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

        def rate(send: Callable[[], int], expected: int) -> float:
            started = time.perf_counter()
            for _ in range(requests):
                status = send()
                assert status == expected, status
            return requests / (time.perf_counter() - started)

        senders = {
            "full": (
                lambda: (
                    http.post(
                        "/api/v1/sessions",
                        json=body,
                        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
                    ).status_code
                ),
                201,
            ),
            "bare": (lambda: http.post("/bench/bare", json=body).status_code, 201),
            "echo": (lambda: http.post("/bench/echo", json=body).status_code, 200),
        }
        rates: dict[str, list[float]] = {name: [] for name in senders}
        for _ in range(rounds):  # alternated, so machine load hits all alike
            for name, (send, expected) in senders.items():
                rates[name].append(rate(send, expected))
    return rates


if __name__ == "__main__":
    main()
