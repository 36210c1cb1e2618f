"""Real processes for end-to-end tests: the simulator, the service and the run command."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import serial

from sessionlog_drivers.simulated import protocol as wire


def console_script(name: str = "sessionlog") -> str:
    script = shutil.which(name, path=str(Path(sys.executable).parent))
    assert script is not None, f"the {name} console script is not installed"
    return script


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONLOG_")}
    env.update(extra)
    return env


def start_simulator(options: str = "channels=2&seed=9") -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [console_script(), "simulate", "--tcp", "127.0.0.1:0", "--options", options],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("socket://"), url
    return process, url


def start_service(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [console_script(), "serve", "--port", str(port)],
        env=clean_env(SESSIONLOG_DATA_DIR=str(data_dir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "the service exited during start-up"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)


def device_status(url: str) -> wire.Status:
    """Ask the simulator for its status over a fresh connection (it takes over from the old one)."""
    port = serial.serial_for_url(url, timeout=2)
    decoder = wire.FrameDecoder(accepted=wire.DEVICE_COMMANDS)
    try:
        port.write(wire.encode_frame(wire.Frame(7, wire.GetStatus())))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for frame in decoder.feed(port.read(max(1, port.in_waiting))):
                if frame.seq == 7 and isinstance(frame.message, wire.Status):
                    return frame.message
    finally:
        port.close()
    raise AssertionError("the simulator did not answer GET_STATUS")


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def signed_in_practitioner(base: str, data_dir: Path) -> httpx.Client:
    """Sign in as the embedded installation's first admin (password from its owner-only file),
    create a practitioner, and return a client signed in as that practitioner."""
    admin_password = (data_dir / "initial-admin-password.txt").read_text().strip()
    with httpx.Client(base_url=base, timeout=10) as anonymous:
        admin_token = anonymous.post(
            "/auth/token", data={"username": "admin", "password": admin_password}
        ).json()["access_token"]
        practitioner_password = "practitioner-password-1"
        created = anonymous.post(
            "/users",
            json={
                "username": "pat",
                "display_name": "Pat",
                "role": "practitioner",
                "password": practitioner_password,
            },
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert created.status_code == 201, created.text
        token = anonymous.post(
            "/auth/token", data={"username": "pat", "password": practitioner_password}
        ).json()["access_token"]
    return httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"})
