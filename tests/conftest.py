"""Shared fixtures: a freshly migrated database per test, on SQLite and (when configured) PostgreSQL.

Each test that takes ``database_url`` runs once per engine. SQLite copies a file migrated once per run;
PostgreSQL clones a database migrated once per run (``CREATE DATABASE ... TEMPLATE``), so every test
starts from a real, fully migrated schema without paying for the migrations again.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from sessionlog.api.app import create_app
from sessionlog.security.passwords import hash_password
from sessionlog.security.scopes import Scope
from sessionlog.security.tokens import issue_token
from sessionlog.settings import Settings
from sessionlog.store import migrations
from sessionlog.store.database import make_engine, normalise_url, session_scope
from sessionlog.store.models import User

POSTGRES_ENV = "SESSIONLOG_TEST_DATABASE_URL"
ENGINES = ["sqlite", "postgresql"]
_counter = itertools.count()


def postgres_base_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    return normalise_url(url) if url else None


def _admin_engine(base_url: str) -> Engine:
    return create_engine(base_url, isolation_level="AUTOCOMMIT")


class PostgresDatabases:
    """Creates and drops throw-away databases on the server named by SESSIONLOG_TEST_DATABASE_URL."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.prefix = f"sltest_{uuid.uuid4().hex[:8]}"
        self.admin = _admin_engine(base_url)
        self.template: str | None = None

    def url_for(self, name: str) -> str:
        return make_url(self.base_url).set(database=name).render_as_string(hide_password=False)

    def create(self, *, template: str | None = None) -> str:
        name = f"{self.prefix}_{next(_counter)}"
        clause = f" TEMPLATE {template}" if template else ""
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}{clause}")
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def migrated_template(self) -> str:
        if self.template is None:
            name = self.create()
            engine = make_engine(self.url_for(name))
            migrations.upgrade(engine)
            engine.dispose()
            self.template = name
        return self.template

    def close(self) -> None:
        with self.admin.connect() as connection:
            rows = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                {"p": f"{self.prefix}_%"},
            ).all()
        for (name,) in rows:
            self.drop(name)
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    base_url = postgres_base_url()
    if base_url is None:
        pytest.skip(f"PostgreSQL variant: set {POSTGRES_ENV} to run it")
    databases = PostgresDatabases(base_url)
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fully migrated database of its own for this test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "sessionlog.sqlite3"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    name = databases.create(template=databases.migrated_template())
    yield databases.url_for(name)
    databases.drop(name)


@pytest.fixture(params=ENGINES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema at all) of its own for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    name = databases.create()
    yield databases.url_for(name)
    databases.drop(name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path / "data", auto_migrate=False)


def create_user(engine: Engine, username: str, role: str, password: str | None = None) -> int:
    with session_scope(engine) as db:
        user = User(
            username=username,
            display_name=username,
            role=role,
            password_hash=hash_password(password) if password else None,
        )
        db.add(user)
        db.flush()
        assert user.id is not None
        return user.id


def bearer(
    app_client: TestClient, user_id: int, role: str, scopes: frozenset[Scope]
) -> dict[str, str]:
    secret = app_client.app.state.auth_secret  # type: ignore[attr-defined]
    token, _ = issue_token(secret, user_id=user_id, role=role, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def anonymous(settings: Settings) -> Iterator[TestClient]:
    """The application on this test's database, with its start-up and shutdown run; no credentials."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api(anonymous: TestClient) -> TestClient:
    """The application, signed in with a token that holds every scope.

    Tests of behaviour use it so they need not juggle roles; which role may do what is tested
    separately, route by route, with tokens from real sign-ins (tests/api/test_access.py).
    """
    engine = anonymous.app.state.engine  # type: ignore[attr-defined]
    user_id = create_user(engine, "tester", "admin")
    # A second client on the same running app (its start-up ran in `anonymous`), so the two keep
    # separate credentials.
    client = TestClient(anonymous.app, raise_server_exceptions=False)
    client.headers.update(bearer(anonymous, user_id, "admin", frozenset(Scope)))
    return client
