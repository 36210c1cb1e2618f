"""A body the server cannot read is a problem naming the body and saying why, never a bare 400."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from sessionlog.store.models import Client
from tests.api.conftest import assert_problem


def _clients(api: TestClient) -> int:
    with Session(api.app.state.engine) as db:  # type: ignore[attr-defined]
        return db.exec(select(func.count()).select_from(Client)).one()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"code": "C-\xff\xfe"}', "the body is not valid UTF-8"),
        (
            b'{"code": "C-1", "notes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "nested too deeply",
        ),
        (b'{"code": "C-1", "age": ' + b"9" * 5000 + b"}", "too many digits"),
    ],
    ids=["not-utf-8", "nested", "huge-number"],
)
def test_an_unreadable_body_is_a_400_problem_naming_the_body(
    api: TestClient, body: bytes, reason: str
) -> None:
    response = api.post(
        "/api/v1/clients", content=body, headers={"content-type": "application/json"}
    )

    problem = assert_problem(response, 400, "body")
    assert reason in problem["detail"]
    assert problem["errors"][0]["location"] == "body"
    assert _clients(api) == 0


def test_a_json_syntax_error_is_still_a_422_naming_where_it_is(api: TestClient) -> None:
    response = api.post(
        "/api/v1/clients", content=b'{"code": ', headers={"content-type": "application/json"}
    )

    assert_problem(response, 422)
    assert _clients(api) == 0
