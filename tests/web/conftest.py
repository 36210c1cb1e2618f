"""Fixtures for the practitioner pages: the app (pages included), people, and sign-in, on the same
per-test database as the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sessionlog.api.app import create_app
from sessionlog.settings import Settings
from tests.conftest import create_user

PASSWORD = "correct horse battery"
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def web(settings: Settings) -> Iterator[TestClient]:
    """The application with the pages, started; no one signed in."""
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


@pytest.fixture
def accounts(web: TestClient) -> dict[str, int]:
    engine = web.app.state.engine  # type: ignore[attr-defined]
    return {
        role: create_user(engine, role, role, PASSWORD)
        for role in ("practitioner", "analyst", "integrator", "admin")
    }


def sign_in(web: TestClient, username: str) -> TestClient:
    """Sign in through the page form; the client keeps the session cookie."""
    response = web.post(
        "/app/sign-in",
        data={"username": username, "password": PASSWORD, "next": "/app/"},
        headers=ORIGIN,
    )
    assert response.status_code == 303, response.text
    return web
