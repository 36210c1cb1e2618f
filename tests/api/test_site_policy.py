"""The site policy in the running service: loaded at start-up, applied to every approval, never absent.

A configured policy file that is missing or invalid stops the application's start-up with a message
naming the file and the reason. One that breaks while the service runs makes every approval answer
503 (a problem document, not a 500) until it is fixed, rather than approving without the site layer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionlog.api.app import create_app
from sessionlog.safety import SitePolicyError
from sessionlog.settings import Settings
from tests.api.conftest import assert_problem, created, ems_plan
from tests.sessions.conftest import connect, live_plan

POLICY_TOML = """\
name = "Test clinic"

[ems]
max_amplitude_ma = 25
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "site-policy.toml"
    path.write_text(POLICY_TOML, encoding="utf-8")
    return path


@pytest.fixture
def settings(database_url: str, tmp_path: Path, policy_file: Path) -> Settings:
    """This module's service runs with a site policy (the shared fixtures build on this one)."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        auto_migrate=False,
        site_policy_path=policy_file,
    )


def rewrite(path: Path, text: str) -> None:
    """Change the file so that the service notices, however coarse the file system's clock is."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def check(api: TestClient, **plan: Any) -> Any:
    return api.post("/api/v1/limits/check", json={"plan": ems_plan(**plan)})


def one_channel(amplitude_ma: float) -> list[dict[str, Any]]:
    return [{"channel": 1, "amplitude_ma": amplitude_ma, "pulse_width_us": 300, "frequency_hz": 35}]


# ---------------------------------------------------------------------------- start-up


def _embedded_settings(tmp_path: Path, policy: Path) -> Settings:
    return Settings(data_dir=tmp_path / "service", site_policy_path=policy)


def test_start_up_with_a_missing_policy_file_fails_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-policy.toml"
    settings = _embedded_settings(tmp_path, missing)

    with (
        caplog.at_level(logging.ERROR),
        pytest.raises(SitePolicyError) as raised,
        TestClient(create_app(settings)),
    ):
        pytest.fail("the service started without its site policy")

    assert str(raised.value) == f"{missing}: cannot read: No such file or directory"
    assert f"cannot start: site policy {missing}: cannot read" in caplog.text
    # It stopped before opening (and so creating) the embedded database.
    assert not (settings.data_dir / "sessionlog.sqlite3").exists()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[ems\nmax_amplitude_ma = 25\n", "not valid TOML"),
        ("[ems]\nmax_frequency_hz = -5\n", "ems.max_frequency_hz: Input should be greater than 0"),
        ("[ems]\nmax_amplitude = 25\n", "ems.max_amplitude: "),
    ],
    ids=["bad-toml", "bad-value", "unitless-amplitude"],
)
def test_start_up_with_an_invalid_policy_file_fails_naming_file_and_reason(
    tmp_path: Path, text: str, reason: str
) -> None:
    policy = tmp_path / "site-policy.toml"
    policy.write_text(text, encoding="utf-8")

    with (
        pytest.raises(SitePolicyError) as raised,
        TestClient(create_app(_embedded_settings(tmp_path, policy))),
    ):
        pytest.fail("the service started with an invalid site policy")

    assert str(raised.value).startswith(f"{policy}: ")
    assert reason in str(raised.value)


def test_start_up_without_a_configured_policy_runs_without_the_site_layer(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "service")
    assert settings.site_policy_path is None  # the default: no site policy
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/health").status_code == 200


# ---------------------------------------------------------------------------- the site layer


def test_dry_run_applies_the_site_policy_and_refuses_beyond_its_bound(api: TestClient) -> None:
    within = check(api, channels=one_channel(25))
    assert within.status_code == 200, within.text
    assert within.json()["approved"] is True
    assert "site" in within.json()["layers"]

    beyond = check(api, channels=one_channel(30))
    assert beyond.status_code == 200, beyond.text
    verdict = beyond.json()
    assert verdict["approved"] is False
    assert "site" in verdict["layers"]
    assert [(v["layer"], v["field"], v["value"], v["bound"]) for v in verdict["violations"]] == [
        ("site", "channels[0].amplitude_ua", 30_000, 25_000)
    ]


# ---------------------------------------------------------------------------- a policy that breaks


def test_a_policy_that_breaks_while_running_refuses_dry_runs_with_503(
    api: TestClient, policy_file: Path
) -> None:
    rewrite(policy_file, "[ems]\nmax_frequency_hz = 'fast'\n")

    problem = assert_problem(check(api, channels=one_channel(20)), 503, "site_policy_path")
    assert problem["type"] == "/problems/site-policy"
    assert str(policy_file) in problem["detail"]
    assert "ems.max_frequency_hz" in problem["detail"]

    rewrite(policy_file, POLICY_TOML)
    fixed = check(api, channels=one_channel(20))
    assert fixed.status_code == 200, fixed.text
    assert "site" in fixed.json()["layers"]


def test_a_deleted_policy_file_refuses_dry_runs_with_503_naming_it(
    api: TestClient, policy_file: Path
) -> None:
    policy_file.unlink()

    problem = assert_problem(check(api), 503, "site_policy_path")
    assert f"{policy_file}: cannot read: No such file or directory" in problem["detail"]


def test_a_broken_policy_refuses_a_live_session_with_503_and_creates_none(
    api: TestClient, policy_file: Path
) -> None:
    practitioner = created(
        api, "/users", {"username": "cleo", "display_name": "Cleo", "role": "practitioner"}
    )
    client = created(api, "/clients", {"code": "C-SITE"})
    device_id = connect(api)
    policy_file.unlink()

    response = api.post(
        "/api/v1/sessions/live",
        json={
            "client_id": client["id"],
            "practitioner_id": practitioner["id"],
            "device_id": device_id,
            "plan": live_plan(),
        },
    )

    assert_problem(response, 503, "site_policy_path")
    assert api.get("/api/v1/sessions").json()["items"] == []
