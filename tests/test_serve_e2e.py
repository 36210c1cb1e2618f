"""The README's run command, for real: `sessionlog serve` on a fresh folder, over a real socket."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import signed_in_practitioner

STARTUP_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _sessionlog_command() -> list[str]:
    script = shutil.which("sessionlog", path=str(Path(sys.executable).parent))
    assert script is not None, "the sessionlog console script is not installed"
    return [script]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONLOG_")}
    process = subprocess.Popen(
        [*_sessionlog_command(), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"sessionlog serve exited early:\n{output}")
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("sessionlog serve did not answer in time")
            time.sleep(0.1)
        yield base, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_creates_and_migrates_the_embedded_database(served: tuple[str, Path]) -> None:
    base, folder = served
    data = folder / "sessionlog-data"
    assert (data / "sessionlog.sqlite3").is_file()
    password_file = data / "initial-admin-password.txt"
    assert password_file.stat().st_mode & 0o077 == 0, (
        "the first admin's password file is not private"
    )
    assert httpx.post(f"{base}/api/v1/clients", json={"code": "C-E2E"}).status_code == 401
    with signed_in_practitioner(f"{base}/api/v1", data) as api:
        response = api.post("/clients", json={"code": "C-E2E"})
        assert response.status_code == 201
        assert api.get(f"/clients/{response.json()['id']}").json()["code"] == "C-E2E"
    schema = httpx.get(f"{base}/api/v1/openapi.json").json()
    assert "/api/v1/sessions" in schema["paths"]
