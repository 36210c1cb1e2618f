"""Ended sessions are final: corrections are new versions with a reason, removal is a status."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from tests.api.conftest import assert_problem, created, ems_plan, session_body


def test_a_correction_supersedes_the_record_and_keeps_the_original(
    api: TestClient, refs: dict[str, int]
) -> None:
    original = created(api, "/sessions", session_body(refs, outcome="tolerated well"))
    corrected = api.post(
        f"/api/v1/sessions/{original['id']}/corrections",
        json={
            "reason": "outcome was typed into the wrong record",
            "outcome": "stopped early: fatigue",
        },
    )
    assert corrected.status_code == 201, corrected.text
    new = corrected.json()
    assert new["supersedes_id"] == original["id"]
    assert new["outcome"] == "stopped early: fatigue"
    assert new["plan"] == original["plan"]
    old = api.get(f"/api/v1/sessions/{original['id']}").json()
    assert old["outcome"] == "tolerated well"
    assert old["superseded_by_id"] == new["id"]
    events = api.get(f"/api/v1/sessions/{new['id']}/events").json()
    assert events[-1]["kind"] == "correction"
    assert events[-1]["payload"]["reason"] == "outcome was typed into the wrong record"
    audit = api.get("/api/v1/audit", params={"limit": 200}).json()["items"]
    correction = next(e for e in audit if e["action"] == "correct")
    assert correction["reason"] == "outcome was typed into the wrong record"
    assert correction["before"]["outcome"] == "tolerated well"


def test_a_corrected_plan_is_flagged_again(api: TestClient, refs: dict[str, int]) -> None:
    original = created(api, "/sessions", session_body(refs))
    plan = ems_plan(
        channels=[{"channel": 1, "amplitude_ma": 125, "pulse_width_us": 300, "frequency_hz": 35}]
    )
    new = api.post(
        f"/api/v1/sessions/{original['id']}/corrections",
        json={"reason": "real amplitude", "plan": plan},
    ).json()
    assert new["out_of_limits"] is True
    assert new["plan"]["channels"][0]["amplitude_ua"] == 125_000


def test_a_correction_needs_a_reason(api: TestClient, refs: dict[str, int]) -> None:
    original = created(api, "/sessions", session_body(refs))
    assert_problem(
        api.post(f"/api/v1/sessions/{original['id']}/corrections", json={"outcome": "x"}),
        422,
        "reason",
    )
    assert_problem(
        api.post(
            f"/api/v1/sessions/{original['id']}/corrections", json={"reason": "", "outcome": "x"}
        ),
        422,
        "reason",
    )


def test_only_the_latest_version_can_be_corrected(api: TestClient, refs: dict[str, int]) -> None:
    original = created(api, "/sessions", session_body(refs))
    api.post(
        f"/api/v1/sessions/{original['id']}/corrections", json={"reason": "first", "notes": "a"}
    )
    again = api.post(
        f"/api/v1/sessions/{original['id']}/corrections", json={"reason": "second", "notes": "b"}
    )
    problem = assert_problem(again, 409)
    assert "superseded" in problem["detail"]


def test_entered_in_error_is_a_new_version_not_a_deletion(
    api: TestClient, refs: dict[str, int]
) -> None:
    original = created(api, "/sessions", session_body(refs))
    marked = api.post(
        f"/api/v1/sessions/{original['id']}/entered-in-error", json={"reason": "wrong client"}
    )
    assert marked.status_code == 201
    assert marked.json()["status"] == "entered_in_error"
    assert api.get(f"/api/v1/sessions/{original['id']}").json()["status"] == "completed"


@pytest.mark.parametrize(
    "statement",
    ["UPDATE session SET outcome = 'edited' WHERE id = :id", "DELETE FROM session WHERE id = :id"],
)
def test_the_database_refuses_to_edit_or_delete_an_ended_session(
    api: TestClient, refs: dict[str, int], engine: Engine, statement: str
) -> None:
    original = created(api, "/sessions", session_body(refs))
    with pytest.raises(DBAPIError), engine.begin() as connection:
        connection.execute(text(statement), {"id": original["id"]})
    assert api.get(f"/api/v1/sessions/{original['id']}").json()["outcome"] == original["outcome"]
