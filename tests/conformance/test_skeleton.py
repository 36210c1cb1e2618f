"""``sessionlog driver new NAME``: the package it writes builds, registers its driver, is lint- and
type-clean, and passes its own tests as generated, the driver contract among them; the contract in
turn catches a driver that delivers the wrong current.

The package is installed with pip into a folder of the test's own (no dependencies, no build
isolation), which registers its entry point exactly as a user's install would, and its tests run in
a child process with that folder on ``PYTHONPATH``; nothing is installed into the environment.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionlog.conformance.cli import driver_app
from sessionlog.conformance.skeleton import SkeletonError, SkeletonNames, write_skeleton
from tests.conformance.helpers import run_pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The generated ``sessionlog-acme`` project, and a folder it is pip-installed into."""
    parent = tmp_path_factory.mktemp("skeleton")
    result = CliRunner().invoke(driver_app, ["new", "acme", "--directory", str(parent)])
    assert result.exit_code == 0, result.output
    project = parent / "sessionlog-acme"
    site = parent / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(project),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return project, site


def test_the_generated_package_passes_its_tests_and_the_contract_as_generated(
    generated: tuple[Path, Path],
) -> None:
    project, site = generated
    entry_points = next(site.glob("sessionlog_acme-*.dist-info")) / "entry_points.txt"
    assert "acme = sessionlog_acme.driver:AcmeDriver" in entry_points.read_text()
    outcome = run_pytest(project, python_path=[site])
    assert outcome.returncode == 0, outcome.output
    assert not outcome.failed
    # The skeleton's device has one modality and reports no measured current, so only the checks
    # of the other modalities and of telemetry do not apply.
    assert set(outcome.skipped) <= {
        "test_every_other_declared_modality_is_delivered_exactly",
        "test_the_device_s_measured_current_reaches_the_driver",
    }, outcome.skipped
    contract = [n for n in outcome.passed if n.startswith("test_") and "protocol" not in n]
    assert "test_start_delivers_exactly_the_approved_plan" in contract
    assert "test_a_silent_host_leaves_the_device_to_stop_by_itself" in contract
    assert len(outcome.passed) >= 25, outcome.passed


def test_the_generated_package_is_lint_and_format_clean(generated: tuple[Path, Path]) -> None:
    project, _ = generated
    for args in (["check", "."], ["format", "--check", "."]):
        completed = subprocess.run(
            [str(BIN / "ruff"), *args], cwd=project, capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


def test_the_contract_catches_a_generated_driver_that_sends_a_tenth_of_the_current(
    generated: tuple[Path, Path], tmp_path: Path
) -> None:
    project, site = generated
    broken = tmp_path / "sessionlog-acme"
    shutil.copytree(project, broken)
    driver = broken / "sessionlog_acme" / "driver.py"
    source = driver.read_text()
    assert source.count("channel.amplitude_ua,") == 1
    # A tenth, kept to the device's 100 µA step so that the device accepts it and delivers it.
    driver.write_text(
        source.replace("channel.amplitude_ua,", "channel.amplitude_ua // 1000 * 100,")
    )
    outcome = run_pytest(broken, "-k", "start_delivers", python_path=[site])
    assert outcome.returncode == 1, outcome.output
    assert outcome.failed == ["test_start_delivers_exactly_the_approved_plan"]
    assert "planned" in outcome.output


@pytest.mark.parametrize("name", ["Acme", "a", "my_dev", "9volt", "class", "x" * 32])
def test_a_name_that_cannot_be_a_scheme_and_package_is_refused(name: str) -> None:
    with pytest.raises(SkeletonError, match="not a driver name"):
        SkeletonNames.for_name(name)


def test_the_names_derive_from_the_driver_name() -> None:
    names = SkeletonNames.for_name("acme2")
    assert (names.package, names.distribution, names.class_name) == (
        "sessionlog_acme2",
        "sessionlog-acme2",
        "Acme2Driver",
    )


def test_a_name_an_installed_driver_has_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SkeletonError, match="already registered"):
        write_skeleton("simulated", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    existing = tmp_path / "sessionlog-acme"
    existing.mkdir()
    (existing / "pyproject.toml").write_text("mine")
    result = CliRunner().invoke(driver_app, ["new", "acme", "--directory", str(tmp_path)])
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert (existing / "pyproject.toml").read_text() == "mine"
    assert sorted(p.name for p in existing.iterdir()) == ["pyproject.toml"]
