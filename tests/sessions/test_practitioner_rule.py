"""A session's practitioner is an active user with the practitioner role, for recorded and live
sessions alike: admins do not run treatments, integrators never see client data, analysts never
control a device, and a deactivated account treats no one. Anyone else is a 422 naming
``practitioner_id`` with the reason, and nothing is stored or planned."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, created, session_body
from tests.sessions.conftest import connect, create_session, live_plan


@pytest.fixture
def device_id(api: TestClient) -> int:
    return connect(api, "channels=1&seed=1")


def recorded(api: TestClient, people: dict[str, int], device_id: int) -> Any:
    return api.post("/api/v1/sessions", json=session_body({**people, "device_id": device_id}))


def live(api: TestClient, people: dict[str, int], device_id: int) -> Any:
    return api.post(
        "/api/v1/sessions/live",
        json={**people, "device_id": device_id, "plan": live_plan()},
    )


CREATE = {"recorded": recorded, "live": live}


def user(api: TestClient, username: str, role: str) -> int:
    user_id: int = created(
        api, "/users", {"username": username, "display_name": username, "role": role}
    )["id"]
    return user_id


def deactivate(api: TestClient, user_id: int) -> None:
    current = api.get(f"/api/v1/users/{user_id}")
    changed = api.patch(
        f"/api/v1/users/{user_id}",
        json={"active": False},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text


@pytest.mark.parametrize("kind", sorted(CREATE))
@pytest.mark.parametrize("role", ["admin", "integrator", "analyst"])
def test_a_user_without_the_practitioner_role_is_refused_as_practitioner(
    api: TestClient, people: dict[str, int], device_id: int, kind: str, role: str
) -> None:
    refs = {**people, "practitioner_id": user(api, f"not-a-practitioner-{role}", role)}

    problem = assert_problem(CREATE[kind](api, refs, device_id), 422, "practitioner_id")

    assert problem["type"] == "/problems/validation"
    assert f"has the {role} role" in problem["errors"][0]["reason"]
    assert "practitioner role" in problem["errors"][0]["reason"]
    assert api.get("/api/v1/sessions").json()["items"] == []


@pytest.mark.parametrize("kind", sorted(CREATE))
def test_a_deactivated_practitioner_is_refused_as_practitioner(
    api: TestClient, people: dict[str, int], device_id: int, kind: str
) -> None:
    deactivate(api, people["practitioner_id"])

    problem = assert_problem(CREATE[kind](api, people, device_id), 422, "practitioner_id")

    assert "is deactivated" in problem["errors"][0]["reason"]
    assert api.get("/api/v1/sessions").json()["items"] == []


@pytest.mark.parametrize("kind", sorted(CREATE))
def test_an_unknown_user_is_still_refused_as_practitioner(
    api: TestClient, people: dict[str, int], device_id: int, kind: str
) -> None:
    refs = {**people, "practitioner_id": 9999}

    problem = assert_problem(CREATE[kind](api, refs, device_id), 422, "practitioner_id")

    assert problem["errors"][0]["reason"] == "no user with id 9999"


def test_a_refused_live_session_leaves_the_device_free_for_a_practitioner(
    api: TestClient, people: dict[str, int], device_id: int
) -> None:
    admin = {**people, "practitioner_id": user(api, "root", "admin")}
    assert_problem(live(api, admin, device_id), 422, "practitioner_id")

    session_id = create_session(api, people, device_id)

    assert (
        api.get(f"/api/v1/sessions/{session_id}").json()["practitioner_id"]
        == (people["practitioner_id"])
    )


def test_a_recorded_session_names_the_missing_client_before_the_practitioner(
    api: TestClient, people: dict[str, int], device_id: int
) -> None:
    """The references are checked in the order the record lists them, the practitioner rule
    among them, in one query."""
    refs = {"client_id": 9999, "practitioner_id": user(api, "ana", "analyst")}

    problem = assert_problem(recorded(api, refs, device_id), 422, "client_id")

    assert [e["field"] for e in problem["errors"]] == ["client_id"]
