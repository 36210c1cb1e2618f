"""The device-side commands: limits check, simulate (a real separate process) and devices scan."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionlog.cli import app
from sessionlog.hal import DriverState, open_device
from sessionlog.safety import Layer, LimitsEngine, StimulationPlan

runner = CliRunner()


def _plan(tmp_path: Path, amplitude_ma: float, area_cm2: float = 50, site: str = "calf") -> Path:
    path = tmp_path / "plan.json"
    path.write_text(
        json.dumps(
            {
                "modality": "ems",
                "duration_s": 900,
                "electrode": {"body_site": site, "area_cm2": area_cm2},
                "channels": [
                    {
                        "channel": 1,
                        "amplitude_ma": amplitude_ma,
                        "pulse_width_us": 300,
                        "frequency_hz": 50,
                    }
                ],
            }
        )
    )
    return path


def test_limits_check_approves_and_prints_the_dose(tmp_path: Path) -> None:
    result = runner.invoke(app, ["limits", "check", str(_plan(tmp_path, 30))])
    assert result.exit_code == 0, result.output
    assert "APPROVED" in result.output
    assert "phase charge 9 µC" in result.output
    # 120 mA is the EMS standard's ceiling; below 1 mA only zero passes (the unit mix-up guard).
    assert "channel 1: 0 or 1 mA (1000 µA) to 120 mA (120000 µA) in steps of 1 µA" in result.output


def test_limits_check_refuses_with_layer_field_and_bound(tmp_path: Path) -> None:
    path = _plan(tmp_path, 130, site="eyes")
    result = runner.invoke(app, ["limits", "check", str(path)])
    assert result.exit_code == 1
    assert "REFUSED" in result.output
    assert "[standard] channels[0].amplitude_ua" in result.output
    assert "[standard] electrode.body_site" in result.output
    assert "value 130000 µA, bound 120000 µA" in result.output
    assert "value eyes\n" in result.output


def test_limits_check_prints_the_source_of_every_standard_layer_finding(tmp_path: Path) -> None:
    path = _plan(tmp_path, 130, area_cm2=2, site="eyes")
    verdict = LimitsEngine().approve(StimulationPlan.model_validate_json(path.read_bytes()))
    findings = [*verdict.violations, *verdict.warnings]
    assert {f.layer for f in findings} == {Layer.STANDARD}
    assert len(verdict.violations) >= 2  # both kinds are printed
    assert verdict.warnings

    result = runner.invoke(app, ["limits", "check", str(path)])

    assert result.exit_code == 1
    lines = result.output.splitlines()
    for finding in findings:
        assert finding.source, finding
        heading = next(i for i, line in enumerate(lines) if f"] {finding.field}: " in line)
        # The source belongs to its own finding: it follows the heading, before the next one.
        following = lines[heading + 1 : heading + 3]
        assert f"      source: {finding.source}" in following, (finding.field, following)


def test_limits_check_warning_needs_an_acknowledgement(tmp_path: Path) -> None:
    plan = str(_plan(tmp_path, 40, area_cm2=2))
    refused = runner.invoke(app, ["limits", "check", plan])
    assert refused.exit_code == 1
    assert "needs --acknowledge current_density_high" in refused.output
    assert "threshold 2 mA/cm²" in refused.output
    accepted = runner.invoke(
        app, ["limits", "check", plan, "--acknowledge", "current_density_high"]
    )
    assert accepted.exit_code == 0, accepted.output


def test_limits_check_with_device_capabilities(tmp_path: Path) -> None:
    capabilities = tmp_path / "caps.json"
    capabilities.write_text(
        json.dumps(
            {
                "model_name": "Small",
                "channel_count": 1,
                "modalities": {
                    "ems": {
                        "amplitude_max_ua": 25000,
                        "pulse_width_min_us": 50,
                        "pulse_width_max_us": 400,
                        "frequency_min_hz": 1,
                        "frequency_max_hz": 100,
                    }
                },
            }
        )
    )
    result = runner.invoke(
        app, ["limits", "check", str(_plan(tmp_path, 30)), "--capabilities", str(capabilities)]
    )
    assert result.exit_code == 1
    assert "[device] channels[0].amplitude_ua" in result.output
    assert "value 30000 µA, bound 25000 µA" in result.output


def test_limits_check_names_a_unit_error_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        '{"modality": "ems", "duration_s": 60, "electrode": {"body_site": "calf", '
        '"area_cm2": 5}, "channels": [{"channel": 1, "amplitude": 30, '
        '"pulse_width_us": 300, "frequency_hz": 50}]}'
    )
    result = runner.invoke(app, ["limits", "check", str(path)])
    assert result.exit_code == 1
    assert "amplitude_ua or amplitude_ma is required" in result.output


def test_devices_scan_lists_the_installed_drivers() -> None:
    result = runner.invoke(app, ["devices", "scan"])
    assert result.exit_code == 0
    assert "simulated" in result.output


def test_simulate_runs_a_device_in_another_process_that_a_driver_can_use() -> None:
    script = shutil.which("sessionlog", path=str(Path(sys.executable).parent))
    assert script is not None
    process = subprocess.Popen(
        [script, "simulate", "--tcp", "127.0.0.1:0", "--options", "channels=2&seed=3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:")
        with open_device(url, driver="simulated") as device:
            assert device.capabilities.channel_count == 2
            assert device.state is DriverState.READY
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    "argv", [["limits", "--help"], ["devices", "--help"], ["simulate", "--help"]]
)
def test_subcommands_have_help(argv: list[str]) -> None:
    assert runner.invoke(app, argv).exit_code == 0
