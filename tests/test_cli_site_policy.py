"""The commands that use the site policy: they apply it, and a missing or invalid file ends them with
one line naming the file and the reason (exit status 1, no traceback), never a run without it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionlog.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _service_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Whatever a command would create lands in this test's folder."""
    monkeypatch.setenv("SESSIONLOG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SESSIONLOG_DATABASE_URL", raising=False)


def _plan(tmp_path: Path, amplitude_ma: float) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(
        json.dumps(
            {
                "modality": "ems",
                "duration_s": 600,
                "electrode": {"body_site": "calf", "area_cm2": 50},
                "channels": [
                    {
                        "channel": 1,
                        "amplitude_ma": amplitude_ma,
                        "pulse_width_us": 300,
                        "frequency_hz": 35,
                    }
                ],
            }
        )
    )
    return path


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site-policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _assert_one_line_error(output: str, *expected: str) -> None:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: site policy "), output
    for text in expected:
        assert text in lines[0], output


def test_limits_check_applies_the_site_policy_with_value_and_bound(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, "[ems]\nmax_amplitude_ma = 25\n")
    monkeypatch.setenv("SESSIONLOG_SITE_POLICY_PATH", str(policy))

    result = runner.invoke(app, ["limits", "check", str(_plan(tmp_path, 30))])

    assert result.exit_code == 1, result.output
    assert "layers checked: standard, site" in result.output
    assert "violation [site] channels[0].amplitude_ua:" in result.output
    assert "value 30000 µA, bound 25000 µA" in result.output


def test_limits_check_with_a_missing_policy_file_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv("SESSIONLOG_SITE_POLICY_PATH", str(missing))

    result = runner.invoke(app, ["limits", "check", str(_plan(tmp_path, 20))])

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    _assert_one_line_error(result.output, str(missing), "cannot read: No such file or directory")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[ems\n", "not valid TOML"),
        ("[ems]\nmax_pulse_width_us = 0\n", "ems.max_pulse_width_us: Input should be greater"),
    ],
    ids=["bad-toml", "bad-field"],
)
def test_limits_check_with_an_invalid_policy_file_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, reason: str
) -> None:
    policy = _policy(tmp_path, text)
    monkeypatch.setenv("SESSIONLOG_SITE_POLICY_PATH", str(policy))

    result = runner.invoke(app, ["limits", "check", str(_plan(tmp_path, 20))])

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    _assert_one_line_error(result.output, str(policy), reason)


def test_run_with_a_missing_policy_file_stops_before_any_device_is_opened(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv("SESSIONLOG_SITE_POLICY_PATH", str(missing))

    result = runner.invoke(
        app, ["run", "--device", "sim://?seed=1", "--plan", str(_plan(tmp_path, 20))]
    )

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    _assert_one_line_error(result.output, str(missing), "cannot read")
    assert not (tmp_path / "data").exists()  # no database was opened, no session recorded


def test_demo_with_an_invalid_policy_file_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, 'forbidden_body_sites = ["elbow"]\n')
    monkeypatch.setenv("SESSIONLOG_SITE_POLICY_PATH", str(policy))

    result = runner.invoke(app, ["demo", "--port", "0", "--no-serve"])

    assert result.exit_code == 1
    _assert_one_line_error(result.output, str(policy), "forbidden_body_sites")


def test_serve_with_a_missing_policy_file_exits_with_one_line_and_does_not_serve(
    tmp_path: Path,
) -> None:
    """A real process: it must end by itself (a server that started would run into the timeout)."""
    script = shutil.which("sessionlog", path=str(Path(sys.executable).parent))
    assert script is not None, "the sessionlog console script is not installed"
    missing = tmp_path / "nowhere.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONLOG_")}
    env["SESSIONLOG_SITE_POLICY_PATH"] = str(missing)

    finished = subprocess.run(
        [script, "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert finished.stdout == ""
    _assert_one_line_error(finished.stderr, str(missing), "cannot read")
