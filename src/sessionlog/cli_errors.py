"""How the command line refuses bad input: one ``error:`` line naming what is wrong and how to fix
it, a non-zero exit, and nothing changed, never a Python traceback.

Three tools keep that rule in one place instead of a ``try`` in every command:

- parameter checks (port and id ranges, ``host_port``, ``new_file``, ``dir_okay=False`` on input
  files) refuse a value before the command runs, so nothing is opened or migrated for bad input;
- ``load_settings`` reads the configuration every command shares and names the variable or file
  entry that is wrong, since the service cannot start on it either;
- ``CleanErrorsGroup``, the class of the root command, turns the error families that come from the
  operator's environment (an unreachable or stale database, a migration target that does not
  exist, a file that cannot be read or written) into that one line. Anything else is a bug and
  keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import tomllib
from pathlib import Path
from typing import Any

import typer
from alembic.util import CommandError
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import OperationalError
from typer.core import TyperGroup

from sessionlog.errors import DomainError
from sessionlog.field_errors import field_errors
from sessionlog.settings import CONFIG_FILE_ENV, Settings
from sessionlog.store.migrations import DatabaseNotMigratedError

MAX_PORT = 65535
"""The largest TCP port; port options take ``min=0, max=MAX_PORT`` (0: any free port)."""


def fail(*lines: str) -> typer.Exit:
    """Print each line as an ``error:`` line on stderr; the caller raises the returned exit."""
    for line in lines:
        typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def file_errors(path: Path, error: ValidationError) -> list[str]:
    """A refused input file as ``FILE: field: reason`` lines, worded like the API's problems."""
    return [
        f"{path}: {field}: {reason}" if field else f"{path}: {reason}"
        for field, reason in field_errors(error)
    ]


def option_errors(error: ValidationError) -> list[str]:
    """A model built from options, refused: each line names the option to change."""
    return [
        f"--{field.replace('_', '-')}: {reason}" if field else reason
        for field, reason in field_errors(error)
    ]


# Settings ----------------------------------------------------------------------------------------


def _setting_name(field: str) -> str:
    """Where the operator wrote a setting: its variable if set (it wins), else the config file."""
    variable = f"SESSIONLOG_{field.upper()}"
    if any(name.upper() == variable for name in os.environ):
        return variable
    config_file = os.environ.get(CONFIG_FILE_ENV)
    return f"{field} in {config_file}" if config_file else variable


def _settings_lines(error: ValidationError) -> list[str]:
    lines = []
    for detail in error.errors(include_url=False):
        field = str(detail["loc"][0]) if detail.get("loc") else "settings"
        if detail.get("type") == "extra_forbidden":
            known = ", ".join(Settings.model_fields)
            lines.append(
                f"unknown setting {field!r} in {os.environ.get(CONFIG_FILE_ENV)}; "
                f"remove it (known settings: {known})"
            )
            continue
        reason = str(detail.get("msg", "invalid value")).removeprefix("Value error, ")
        lines.append(f"setting {_setting_name(field)}: {reason}")
    return lines


def load_settings() -> Settings:
    """The service's settings, or exit naming the variable or file entry that cannot be used."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    fix_file = f"fix the file or unset {CONFIG_FILE_ENV}"
    try:
        return Settings()
    except ValidationError as error:
        raise fail(*_settings_lines(error)) from None
    except SettingsError as error:
        # Raised for a value that must be JSON (a list) and is not; the message names the field.
        field = next((name for name in Settings.model_fields if f'"{name}"' in str(error)), None)
        where = _setting_name(field) if field else "settings"
        raise fail(
            f"setting {where} is not valid JSON; write a list as JSON, "
            "e.g. '[\"https://clinic.example\"]'"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise fail(
            f"{CONFIG_FILE_ENV} {config_file} is not valid TOML: {error}; {fix_file}"
        ) from None
    except UnicodeDecodeError:
        raise fail(f"{CONFIG_FILE_ENV} {config_file} is not UTF-8 text; {fix_file}") from None
    except FileNotFoundError as error:  # the loader's own message names the variable and path
        raise fail(f"{error}; point it at a TOML settings file or unset it") from None
    except OSError as error:
        raise fail(
            f"{CONFIG_FILE_ENV} {config_file} cannot be read: {error.strerror}; {fix_file}"
        ) from None


# Parameter checks --------------------------------------------------------------------------------


def host_port(value: str | None) -> str | None:
    """A ``HOST:PORT`` option: refused before anything listens if the port is not 0-65535."""
    if value is None:
        return value
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit():
        raise typer.BadParameter(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:0 (0: any free port)")
    if int(port) > MAX_PORT:
        raise typer.BadParameter(f"port {port} is not in 0-{MAX_PORT} (0: any free port)")
    return f"{host}:{int(port)}"


def new_file(value: Path | None) -> Path | None:
    """A file to write: its folder must exist now, before any database is opened or migrated."""
    if value is None:
        return value
    folder = value.absolute().parent
    if not folder.is_dir():
        raise typer.BadParameter(f"folder {folder} does not exist; create it or choose another")
    if not os.access(folder, os.W_OK):
        raise typer.BadParameter(f"folder {folder} is not writable; choose another")
    return value


# The one place for errors from the environment ----------------------------------------------------


def _database_reason(error: OperationalError) -> str:
    """The driver's first line (psycopg adds hints and SQLAlchemy a link on the lines after)."""
    cause = error.orig if error.orig is not None else error
    return next((line.strip() for line in str(cause).splitlines() if line.strip()), str(cause))


def explain(error: BaseException) -> str | None:
    """One line for an error the operator can fix, or None for a bug (which keeps its traceback)."""
    if isinstance(error, DatabaseNotMigratedError | DomainError):
        # A domain error names the field and the reason, as the API's problem documents do.
        return str(error)
    if isinstance(error, CommandError):
        return (
            f"{error}; name a revision shown by `sessionlog db current`, "
            "a step such as -1, base or head"
        )
    if isinstance(error, OperationalError):
        return (
            f"database: {_database_reason(error)}; check SESSIONLOG_DATABASE_URL and that the "
            "database can be reached"
        )
    if isinstance(error, OSError) and error.filename is not None and error.errno != errno.EPIPE:
        return f"{error.filename}: {error.strerror or error}; check the path and its permissions"
    return None


class CleanErrorsGroup(TyperGroup):
    """The root command: every subcommand runs inside it, so its ``invoke`` sees every error."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click context (typer vendors click)
        try:
            return super().invoke(ctx)
        except Exception as error:
            line = explain(error)
            if line is None:
                raise
            raise fail(line) from None
