"""Running pytest in a child process and reading what happened from its JUnit report, so the
plugin is exercised exactly as a command line would load it (its options, its collection hook)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PLUGIN = "sessionlog.conformance.plugin"


@dataclass
class Outcome:
    returncode: int
    output: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Test name → skip message."""


def run_pytest(
    cwd: Path, *args: str, python_path: list[Path] | None = None, timeout_s: float = 120
) -> Outcome:
    report = cwd / f".report-{len(list(cwd.glob('.report-*')))}.xml"
    env = {**os.environ}
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in python_path)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    outcome = Outcome(completed.returncode, completed.stdout + completed.stderr)
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            name = case.get("name", "")
            skipped = case.find("skipped")
            if skipped is not None:
                outcome.skipped[name] = skipped.get("message", "")
            elif case.find("failure") is not None or case.find("error") is not None:
                outcome.failed.append(name)
            else:
                outcome.passed.append(name)
    return outcome
