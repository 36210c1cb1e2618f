"""Bad input on the command line: one ``error:`` line naming what is wrong and how to fix it, a
non-zero exit, nothing changed, never a traceback; and the same rules as the API.

Commands run with ``catch_exceptions=False``, so an exception that escapes the command line (what
an operator sees as a traceback) fails the test instead of becoming an exit status of 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from sessionlog.cli import app
from sessionlog.schemas import UserCreate
from sessionlog.store import migrations
from sessionlog.store.database import make_engine
from sessionlog.store.models import ApiKey, User

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets: no inherited SESSIONLOG_ variables, the data folder in tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("SESSIONLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SESSIONLOG_DATA_DIR", str(tmp_path / "data"))


def invoke(args: list[str], env: Mapping[str, str] | None = None) -> Result:
    # A wide terminal, so a usage error's box does not break a long path in two.
    wide = {"COLUMNS": "1000", **(env or {})}
    return runner.invoke(app, args, env=wide, catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    """The output, asserted to be nothing but ``error:`` lines after a refusal with status 1."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines, result.output
    assert all(line.startswith("error: ") for line in lines), result.output
    assert "errors.pydantic.dev" not in result.output
    return lines


def one_error(result: Result) -> str:
    lines = error_lines(result)
    assert len(lines) == 1, result.output
    return lines[0]


def usage_error(result: Result) -> str:
    """A refusal of an argument before the command runs (status 2), as one line of text."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.replace("│", " ").split())


def _migrated_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    engine = make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    return url


def _count(url: str, table: type[User] | type[ApiKey]) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(table)).scalar_one()
    finally:
        engine.dispose()


def _valid_plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(
        json.dumps(
            {
                "modality": "ems",
                "duration_s": 1,  # a regression that runs it ends at once
                "electrode": {"body_site": "calf", "area_cm2": 50},
                "channels": [
                    {"channel": 1, "amplitude_ma": 20, "pulse_width_us": 300, "frequency_hz": 35}
                ],
            }
        )
    )
    return path


# The API's rules for users and keys ---------------------------------------------------------------

BAD_USERNAMES = ["", " ", "bad name", "evil\x1b[31m", "u" * 300, "ünï", "-leading-dash"]


@pytest.mark.parametrize("username", BAD_USERNAMES)
def test_users_create_refuses_a_username_the_api_refuses(
    username: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError):  # the API's own rule refuses it
        UserCreate(username=username, display_name="x", role="practitioner")
    database = tmp_path / "users.sqlite3"
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("SESSIONLOG_AUTO_MIGRATE", "true")

    result = invoke(
        ["users", "create", "--username", username, "--role", "practitioner", "--no-password"]
    )

    line = one_error(result)  # the username only, not also the display name it defaults to
    assert line.startswith("error: --username: ")
    assert "\x1b" not in result.output
    assert not database.exists()  # refused before the database was opened


def test_users_create_accepts_what_the_api_accepts_and_names_a_bad_display_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _migrated_url(tmp_path)
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", url)

    station = ["users", "create", "--username", "room.2_b-1", "--role", "practitioner"]
    bad_display = invoke([*station, "--no-password", "--display-name", "Room\x072"])
    assert one_error(bad_display).startswith("error: --display-name: must be a single line")
    short = invoke(
        ["users", "create", "--username", "room.2_b-1", "--role", "admin", "--password", "short"]
    )
    assert one_error(short) == "error: --password: String should have at least 12 characters"
    assert _count(url, User) == 0

    made = invoke(
        ["users", "create", "--username", "room.2_b-1", "--role", "practitioner", "--no-password"]
    )
    assert made.exit_code == 0, made.output
    assert _count(url, User) == 1


@pytest.mark.parametrize("name", ["", "a\nb", " ", "x" * 201, "bell\x07"])
def test_keys_create_refuses_a_name_the_api_refuses(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _migrated_url(tmp_path)
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", url)
    station = ["users", "create", "--username", "room1", "--role", "practitioner", "--no-password"]
    assert invoke(station).exit_code == 0

    result = invoke(["keys", "create", "--user", "room1", "--name", name])

    assert one_error(result).startswith("error: --name: ")
    assert _count(url, ApiKey) == 0


@pytest.mark.parametrize("key_id", ["99999999999999999999", "0"])
def test_keys_revoke_refuses_an_id_no_key_can_have(key_id: str) -> None:
    assert "KEY_ID" in usage_error(invoke(["keys", "revoke", key_id])).upper()


# Files and directories ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["limits", "check", "{dir}"],
        ["limits", "check", "{plan}", "--capabilities", "{dir}"],
        ["run", "--device", "sim://", "--plan", "{dir}"],
    ],
)
def test_a_folder_given_as_an_input_file_is_refused(args: list[str], tmp_path: Path) -> None:
    plan = _valid_plan(tmp_path)
    argv = [a.format(dir=tmp_path, plan=plan) for a in args]
    assert "is a directory" in usage_error(invoke(argv))


def test_export_to_a_missing_folder_is_refused_before_the_database_is_made(
    tmp_path: Path,
) -> None:
    out = tmp_path / "nonexistent" / "dir" / "x.csv"
    text = usage_error(invoke(["export", "--format", "csv", "--out", str(out)]))
    assert f"folder {out.parent} does not exist" in text
    assert not (tmp_path / "data").exists()


# Database ---------------------------------------------------------------------------------------


def test_db_downgrade_to_an_unknown_revision_is_one_line(tmp_path: Path) -> None:
    line = one_error(invoke(["db", "downgrade", "nonexistent-rev"]))
    assert "nonexistent-rev" in line
    assert "sessionlog db current" in line


def test_refresh_summary_on_an_unmigrated_database_says_to_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    line = one_error(invoke(["db", "refresh-summary"]))
    assert "run `sessionlog db upgrade`" in line


def test_an_unreachable_database_is_one_line() -> None:
    line = one_error(
        invoke(
            ["db", "current"],
            env={"SESSIONLOG_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/sessions"},
        )
    )
    assert line.startswith("error: database: ")
    assert "SESSIONLOG_DATABASE_URL" in line


# Ports and addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_port_out_of_range_is_refused(command: str, port: str) -> None:
    assert "'--port'" in usage_error(invoke([command, "--port", port]))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("notanaddr", "is not HOST:PORT"),
        ("127.0.0.1:99999", "port 99999 is not in 0-65535"),
        ("127.0.0.1:", "is not HOST:PORT"),
    ],
)
def test_simulate_refuses_a_malformed_address(address: str, expected: str) -> None:
    assert expected in usage_error(invoke(["simulate", "--tcp", address]))


def test_simulate_on_an_address_of_another_machine_is_one_line() -> None:
    line = one_error(invoke(["simulate", "--tcp", "192.0.2.1:0"]))  # TEST-NET-1, never local
    assert line.startswith("error: cannot listen on 192.0.2.1:0: ")
    assert "127.0.0.1:0" in line


# Settings ---------------------------------------------------------------------------------------


def _config(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "sessionlog.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SESSIONLOG_PORT": "abc"}, "setting SESSIONLOG_PORT: Input should be a valid integer"),
        ({"SESSIONLOG_PORT": "70000"}, "setting SESSIONLOG_PORT: Input should be less than"),
        ({"SESSIONLOG_CORS_ORIGINS": "not json"}, "SESSIONLOG_CORS_ORIGINS is not valid JSON"),
        ({"SESSIONLOG_DATABASE_URL": "::::"}, "cannot be read as a database URL"),
        ({"SESSIONLOG_DATABASE_URL": "mysql://a@b/c"}, "mysql:// is not a supported database"),
        ({"SESSIONLOG_DATA_DIR": "/etc/passwd"}, "setting SESSIONLOG_DATA_DIR: /etc/passwd"),
        ({"SESSIONLOG_DATA_DIR": "/etc/passwd/sub"}, "/etc/passwd is a file"),
    ],
)
def test_a_bad_setting_names_the_variable(env: dict[str, str], expected: str) -> None:
    line = one_error(invoke(["db", "current"], env=env))
    assert expected in line, line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port = [", "is not valid TOML"),
        ("bogus = 1\n", "unknown setting 'bogus' in"),
        ('port = "x"\n', "setting port in "),
        (b"port = '\xff'\n", "is not UTF-8 text"),
    ],
)
def test_a_bad_config_file_names_the_file_and_the_entry(
    text: str | bytes, expected: str, tmp_path: Path
) -> None:
    line = one_error(
        invoke(["db", "current"], env={"SESSIONLOG_CONFIG_FILE": _config(tmp_path, text)})
    )
    assert expected in line, line
    assert "sessionlog.toml" in line


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    absent = tmp_path / "absent.toml"
    line = one_error(invoke(["db", "current"], env={"SESSIONLOG_CONFIG_FILE": str(absent)}))
    assert str(absent) in line
    assert "unset it" in line


def test_a_bad_setting_leaves_no_database_behind(tmp_path: Path) -> None:
    one_error(invoke(["seed", "--sessions", "1"], env={"SESSIONLOG_PORT": "abc"}))
    assert not (tmp_path / "data").exists()


# Plans -------------------------------------------------------------------------------------------


def test_limits_check_prints_a_malformed_plan_as_field_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "modality": "ems",
                "duration_s": -1,
                "electrode": {"body_site": "calf", "area_cm2": 5},
                "channels": [
                    {"channel": 1, "amplitude": 30, "pulse_width_us": 300, "frequency_hz": 50}
                ],
            }
        )
    )
    lines = error_lines(invoke(["limits", "check", str(path)]))
    assert sorted(lines) == sorted(
        [
            f"error: {path}: channels[0].amplitude_ua: amplitude_ua or amplitude_ma is required "
            "(the unit must be explicit)",
            f"error: {path}: duration_s: Input should be greater than 0",
        ]
    )


def test_limits_check_names_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text("# not json")
    line = one_error(invoke(["limits", "check", str(path)]))
    assert line == f"error: {path}: malformed JSON: expected value at line 1 column 1"


def test_limits_check_names_the_capabilities_file_when_it_is_the_bad_one(tmp_path: Path) -> None:
    capabilities = tmp_path / "caps.json"
    capabilities.write_text("{}")
    lines = error_lines(
        invoke(["limits", "check", str(_valid_plan(tmp_path)), "--capabilities", str(capabilities)])
    )
    assert all(line.startswith(f"error: {capabilities}: ") for line in lines)


@pytest.mark.parametrize(
    "channel",
    [
        {"channel": 1, "amplitude": 30, "pulse_width_us": 300, "frequency_hz": 50},
        {"channel": 1, "amplitude_ua": 3, "amplitude_ma": 1, "pulse_width_us": 300},
        {"channel": 0, "amplitude_ma": 1.0001, "pulse_width_us": -3, "frequency_hz": "x"},
    ],
)
def test_plan_errors_are_worded_as_the_api_words_them(channel: dict[str, object]) -> None:
    from fastapi.exceptions import RequestValidationError

    from sessionlog.api.problems import _validation_errors
    from sessionlog.field_errors import field_errors
    from sessionlog.safety import StimulationPlan

    plan = {
        "modality": "ems",
        "duration_s": 60,
        "electrode": {"body_site": "calf", "area_cm2": 5},
        "channels": [channel],
    }
    with pytest.raises(ValidationError) as refused:
        StimulationPlan.model_validate(plan)

    api = _validation_errors(RequestValidationError(refused.value.errors()))
    assert field_errors(refused.value) == [(e.field, e.reason) for e in api]


@pytest.mark.parametrize("command", ["limits", "run"])
def test_an_unknown_warning_code_is_refused_with_the_valid_ones(
    command: str, tmp_path: Path
) -> None:
    plan = str(_valid_plan(tmp_path))
    argv = (
        ["limits", "check", plan]
        if command == "limits"
        else ["run", "--device", "sim://", "--plan", plan]
    )
    text = usage_error(invoke([*argv, "--acknowledge", "bogus"]))
    assert "'bogus'" in text
    assert "current_density_high" in text


# The installed entry point ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env"),
    [(["db", "current"], {"SESSIONLOG_PORT": "abc"}), (["serve", "--port", "99999"], {})],
)
def test_the_installed_command_prints_no_traceback(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    script = shutil.which("sessionlog", path=str(Path(sys.executable).parent))
    assert script is not None
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SESSIONLOG_")}
    result = subprocess.run(
        [script, *args],
        env={**clean, "SESSIONLOG_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_run_with_an_account_that_is_no_practitioner_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", _migrated_url(tmp_path))
    created = invoke(["users", "create", "--username", "boss", "--role", "admin", "--no-password"])
    assert created.exit_code == 0, created.output

    result = invoke(
        [
            "run",
            "--device",
            "sim://?channels=1&seed=2",
            "--plan",
            str(_valid_plan(tmp_path)),
            "--practitioner",
            "boss",
        ]
    )

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    assert errors[0].startswith("error: practitioner_id: user ")
    assert "has the admin role" in errors[0]
