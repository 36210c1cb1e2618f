"""Session create over HTTP against a real uvicorn server (run: ``python -m benchmarks.api``).

The full path (bearer token, scope check, validation, standard-limits flagging, dose, the insert, the
audit event in the same transaction, an Idempotency-Key stored with it) against a bare endpoint on
the same server that parses the same JSON body and returns it, measured alternately in the same run.
Printed as the ratio of request rates (target ≥ 0.5×).
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
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sessionlog.api.app import create_app
from sessionlog.security.passwords import hash_password
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

    @app.post("/bench/bare")
    def bare(body: dict[str, Any]) -> dict[str, Any]:
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
            full_rates, bare_rates = _measure(base, _body(ids), args.requests, args.rounds)  # type: ignore[arg-type]
        finally:
            server.terminate()
            server.wait(timeout=10)
    full_rate, bare_rate = statistics.median(full_rates), statistics.median(bare_rates)
    ratio = full_rate / bare_rate
    print(f"session create over HTTP (auth + audit + idempotency): {full_rate:,.0f} requests/s")
    print(f"bare endpoint on the same server:                      {bare_rate:,.0f} requests/s")
    print(f"  ratio = {ratio:.2f}x (target >= 0.5x) {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")


def _measure(
    base: str, body: dict[str, Any], requests: int, rounds: int
) -> tuple[list[float], list[float]]:
    with httpx.Client(base_url=base, timeout=30) as http:
        token = http.post("/api/v1/auth/token", data={"username": "bench", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

        def full() -> float:
            started = time.perf_counter()
            for _ in range(requests):
                response = http.post(
                    "/api/v1/sessions",
                    json=body,
                    headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
                )
                assert response.status_code == 201, response.text
            return requests / (time.perf_counter() - started)

        def bare() -> float:
            started = time.perf_counter()
            for _ in range(requests):
                assert http.post("/bench/bare", json=body).status_code == 200
            return requests / (time.perf_counter() - started)

        full_rates, bare_rates = [], []
        for _ in range(rounds):  # alternated, so machine load hits both alike
            bare_rates.append(bare())
            full_rates.append(full())
    return full_rates, bare_rates


if __name__ == "__main__":
    main()
