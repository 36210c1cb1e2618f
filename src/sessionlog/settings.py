"""Service configuration, read once from ``SESSIONLOG_`` environment variables and an optional TOML file.

One settings class serves the API, the CLI and the tests, so a deployment is described in one place.
The embedded default (no database URL given) keeps a SQLite file in the data folder and migrates it on
start; a database named explicitly is never migrated behind the operator's back.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

CONFIG_FILE_ENV = "SESSIONLOG_CONFIG_FILE"
"""Environment variable naming an optional TOML settings file (its keys are the field names)."""

SQLITE_FILE_NAME = "sessionlog.sqlite3"

SUPPORTED_DATABASE_DRIVERS = frozenset(
    {"sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg"}
)
"""The URL schemes of the databases sessionlog installs a driver for and is tested on."""
_DATABASE_URL_FORMS = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"


class Settings(BaseSettings):
    """Everything a deployment may set. Environment variables win over the TOML file."""

    model_config = SettingsConfigDict(env_prefix="SESSIONLOG_", extra="forbid")

    data_dir: Path = Field(
        default=Path("sessionlog-data"),
        description="Folder for the embedded SQLite database, spool files and generated secrets.",
        validate_default=True,
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...). Unset: embedded SQLite "
        "in data_dir, migrated automatically on start.",
    )
    auto_migrate: bool | None = Field(
        default=None,
        description="Upgrade the schema on start. Unset: only for the embedded default database.",
    )
    site_policy_path: Path | None = Field(
        default=None, description="TOML or JSON file with the site's limits policy."
    )
    auth_secret: SecretStr | None = Field(
        default=None,
        description="Secret for signing access tokens; generated in data_dir if unset.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API; empty (the default) allows none.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    device_paths: list[str] = Field(
        default_factory=lambda: [
            "/dev/ttyUSB*",
            "/dev/ttyACM*",
            "/dev/serial/by-id/*",
            "/dev/serial/by-path/*",
            "/dev/cu.usb*",
            "/dev/tty.usb*",
        ],
        description="Shell-style patterns of the serial device paths POST /connections may open "
        "(the path as given and with its links resolved must both match, and be a character "
        "device). The default is USB serial adapters only: on-board ports (/dev/ttyS*) are often "
        "a login console, and ptys (/dev/pts/*) are terminals, a simulator's among them, so a "
        "site adds those it means.",
    )
    device_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        description="Hosts a network serial URL (socket://, rfc2217://) given to POST /connections "
        "may reach; the default, loopback only, keeps API callers out of the site's network.",
    )

    @field_validator("data_dir")
    @classmethod
    def _data_dir_can_be_a_folder(cls, value: Path) -> Path:
        """Refuse at start-up a folder that cannot exist, rather than at the first file written."""
        for candidate in (value, *value.absolute().parents):
            if candidate.exists():
                if candidate.is_dir():
                    return value
                where = "it" if candidate == value else str(candidate)
                raise ValueError(
                    f"{value} cannot be a folder: {where} is a file; "
                    "name a folder (it is created if missing)"
                )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_supported(cls, value: str | None) -> str | None:
        """Refuse a URL no installed driver opens, naming the forms that work, before any connect."""
        if value is None:
            return value
        try:
            driver = make_url(value).drivername
        except (ArgumentError, ValueError):
            raise ValueError(
                f"cannot be read as a database URL; write it as {_DATABASE_URL_FORMS}"
            ) from None
        if driver not in SUPPORTED_DATABASE_DRIVERS:
            raise ValueError(f"{driver}:// is not a supported database; use {_DATABASE_URL_FORMS}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"{CONFIG_FILE_ENV} names {path}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.data_dir / SQLITE_FILE_NAME).resolve()}"

    @property
    def should_auto_migrate(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.uses_embedded_database
