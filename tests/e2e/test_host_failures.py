"""The host dies or is interrupted mid-session, for real, with the device in its own process.

- SIGKILL of the service: the simulator's watchdog stops output within its watchdog time; at the next
  start the session is marked interrupted, with its events and telemetry up to the last flush.
- Ctrl-C (SIGINT) of `sessionlog run`: output is stopped first, then the command exits.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

from sessionlog_drivers.simulated import protocol as wire
from tests.e2e.processes import (
    clean_env,
    console_script,
    device_status,
    free_port,
    signed_in_practitioner,
    start_service,
    start_simulator,
    stop,
)

WATCHDOG_MS = 800


def _running(status: wire.Status) -> bool:
    return any(channel.state is wire.ChannelState.RUNNING for channel in status.channels)


def test_sigkill_of_the_service_stops_the_device_and_marks_the_session_interrupted(
    tmp_path: Path,
) -> None:
    simulator, device_url = start_simulator(f"channels=1&seed=9&watchdog_ms={WATCHDOG_MS}")
    port = free_port()
    service = start_service(tmp_path, port)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        api = signed_in_practitioner(base, tmp_path)
        with api:
            user = api.get("/auth/me").json()
            client = api.post("/clients", json={"code": "C-KILL"}).json()
            device = api.post(
                "/connections", json={"driver": "simulated", "url": device_url}
            ).json()
            plan = {
                "modality": "ems",
                "duration_s": 600,
                "electrode": {"body_site": "calf", "area_cm2": 40},
                "channels": [
                    {"channel": 1, "amplitude_ma": 18, "pulse_width_us": 300, "frequency_hz": 35}
                ],
            }
            created = api.post(
                "/sessions/live",
                json={
                    "client_id": client["id"],
                    "practitioner_id": user["user_id"],
                    "device_id": device["device"]["id"],
                    "plan": plan,
                },
            )
            session_id = created.json()["session_id"]
            assert api.post(f"/sessions/{session_id}/start").status_code == 200
            time.sleep(1.6)  # at least one telemetry flush

        service.send_signal(signal.SIGKILL)
        service.wait(timeout=10)
        killed_at = time.monotonic()
        time.sleep(WATCHDOG_MS / 1000 + 0.4)
        status = device_status(device_url)
        assert not _running(status), "output still on after the host died"
        assert status.flags & wire.DeviceFlags.WATCHDOG_EXPIRED
        assert time.monotonic() - killed_at < 5

        service = start_service(tmp_path, port)
        with httpx.Client(base_url=base, timeout=10, headers=api.headers) as api:
            record = api.get(f"/sessions/{session_id}").json()
            assert record["status"] == "interrupted"
            assert "found at the next start" in record["end_reason"]
            kinds = [e["kind"] for e in api.get(f"/sessions/{session_id}/events").json()]
            assert kinds[:2] == ["approved", "state_changed"]
            assert kinds[-1] == "state_changed"
            series = api.get(f"/sessions/{session_id}/telemetry").json()
            assert series
            assert series[0]["samples"] >= 10
    finally:
        stop(service)
        stop(simulator)


def test_ctrl_c_of_run_stops_output_before_exiting(tmp_path: Path) -> None:
    simulator, device_url = start_simulator("channels=1&seed=4&watchdog_ms=5000")
    plan = tmp_path / "plan.json"
    plan.write_text(
        '{"modality": "ems", "duration_s": 600, "electrode": {"body_site": "calf", "area_cm2": 40}, '
        '"channels": [{"channel": 1, "amplitude_ma": 12, "pulse_width_us": 300, "frequency_hz": 35}]}'
    )
    run = subprocess.Popen(
        [console_script(), "run", "--device", device_url, "--plan", str(plan)],
        env=clean_env(SESSIONLOG_DATA_DIR=str(tmp_path / "data"), COLUMNS="100"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert run.stdout is not None
        first = run.stdout.readline()
        assert "connected" in first, first
        time.sleep(1.0)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=15) == 130
        # The watchdog (5 s) has not expired: output is off because the command stopped it.
        assert not _running(device_status(device_url))
    finally:
        stop(run)
        stop(simulator)
