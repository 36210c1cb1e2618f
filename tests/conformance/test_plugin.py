"""The pytest plugin: its options collect the contract for the named driver, point it at another
port, skip what hardware cannot show with the reason, and do nothing when not given.

Each run is a child pytest process loading the plugin with ``-p``, as a command line does.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from sessionlog.conformance.contract import HARDWARE_SKIP, OUTPUT_SKIP
from sessionlog.conformance.probe import EmulatorProbe, probe_for
from sessionlog.hal.transport import register_url_handler_package
from sessionlog_drivers.rehastim2 import URL_HANDLER_PACKAGE as REHASTIM2_PACKAGE
from sessionlog_drivers.simulated import open_sim_port
from tests.conformance.helpers import PLUGIN, run_pytest

SIM_URL = "sim://?channels=2&seed=7"


def test_the_driver_option_collects_the_contract_for_that_driver(tmp_path: Path) -> None:
    outcome = run_pytest(
        tmp_path,
        "-p",
        PLUGIN,
        "--sessionlog-driver",
        "simulated",
        "--sessionlog-url",
        SIM_URL,
        "-k",
        "registered or start_delivers or not_approved",
    )
    assert outcome.returncode == 0, outcome.output
    assert "test_the_driver_is_registered_under_its_name" in outcome.passed
    assert "test_start_delivers_exactly_the_approved_plan" in outcome.passed
    assert len(outcome.passed) == 3, outcome.output
    assert not outcome.skipped, outcome.skipped


def test_a_hardware_run_skips_emulator_only_checks_and_says_why(tmp_path: Path) -> None:
    outcome = run_pytest(
        tmp_path,
        "-p",
        PLUGIN,
        "--sessionlog-driver",
        "simulated",
        "--sessionlog-url",
        SIM_URL,
        "--sessionlog-hardware",
        "-k",
        "start_delivers or silent_host or broken_link or highest",
    )
    assert outcome.returncode == 0, outcome.output
    assert outcome.passed == ["test_start_delivers_exactly_the_approved_plan"]
    assert len(outcome.skipped) == 5, outcome.skipped
    assert set(outcome.skipped.values()) == {HARDWARE_SKIP}


def test_a_contract_already_in_the_run_is_not_collected_again(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(
        "from sessionlog.conformance.contract import DriverContract\n\n\n"
        "class TestMine(DriverContract):\n"
        '    driver_name = "simulated"\n'
        f'    url = "{SIM_URL}"\n'
    )
    outcome = run_pytest(
        tmp_path, "-p", PLUGIN, "--sessionlog-driver", "simulated", "-k", "registered"
    )
    assert outcome.returncode == 0, outcome.output
    assert outcome.passed == ["test_the_driver_is_registered_under_its_name"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sessionlog-url", SIM_URL], "apply to the driver named by --sessionlog-driver"),
        (["--sessionlog-driver", "nosuch"], "no driver named 'nosuch'"),
        (["--sessionlog-driver", "simulated", "--sessionlog-hardware"], "needs --sessionlog-url"),
    ],
    ids=["url without driver", "unknown driver", "hardware without url"],
)
def test_options_that_cannot_mean_what_they_say_are_usage_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    outcome = run_pytest(tmp_path, "-p", PLUGIN, *args)
    assert outcome.returncode == pytest.ExitCode.USAGE_ERROR, outcome.output
    assert message in outcome.output


def test_the_plugin_loads_once_beside_its_entry_point_and_is_inert_without_options(
    tmp_path: Path,
) -> None:
    """``-p sessionlog.conformance.plugin`` (as generated packages use) and a ``pytest11`` entry
    point of the same name load the plugin once; without options no contract is added."""
    site = tmp_path / "site"
    dist_info = site / "sessionlog_plugin_probe-0.0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: sessionlog-plugin-probe\n")
    (dist_info / "entry_points.txt").write_text(f"[pytest11]\n{PLUGIN} = {PLUGIN}\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_plain.py").write_text("def test_plain() -> None:\n    assert True\n")
    outcome = run_pytest(project, "-p", PLUGIN, python_path=[site])
    assert outcome.returncode == 0, outcome.output
    assert outcome.passed == ["test_plain"]


@pytest.fixture
def simulator_socket() -> Iterator[str]:
    """The simulated stimulator in its own process: a port with no probe into the device."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sessionlog_drivers.simulated", "--tcp", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready, "the simulator printed no address"
        yield process.stdout.readline().strip()
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_a_port_without_a_probe_runs_no_output_check_unless_hardware_is_said(
    tmp_path: Path, simulator_socket: str
) -> None:
    outcome = run_pytest(
        tmp_path,
        "-p",
        PLUGIN,
        "--sessionlog-driver",
        "simulated",
        "--sessionlog-url",
        simulator_socket,
        "-k",
        "connect_identifies or start_delivers or silent_host",
    )
    assert outcome.returncode == 0, outcome.output
    assert outcome.passed == ["test_connect_identifies_the_device_and_reports_its_capabilities"]
    assert outcome.skipped["test_start_delivers_exactly_the_approved_plan"] == OUTPUT_SKIP
    silent_host = outcome.skipped["test_a_silent_host_leaves_the_device_to_stop_by_itself"]
    assert "no emulator probe" in silent_host


def test_probes_are_found_for_both_built_in_emulators_and_no_other_port() -> None:
    register_url_handler_package(REHASTIM2_PACKAGE)
    port = open_sim_port("sim://?channels=2")
    rehastim2 = serial.serial_for_url("rehastim2://", timeout=0.01)
    loop = serial.serial_for_url("loop://", timeout=0.01)
    try:
        assert isinstance(probe_for(port), EmulatorProbe)
        assert isinstance(probe_for(rehastim2), EmulatorProbe)
        assert probe_for(loop) is None
        assert probe_for(object()) is None

        class Unknown:
            emulator = object()

        assert probe_for(Unknown()) is None
    finally:
        port.close()
        rehastim2.close()
        loop.close()
