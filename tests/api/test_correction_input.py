"""A correction says what changes: `null` is a 422 naming the field (it used to mean "keep"), and a
correction that changes nothing is refused instead of stored as an identical new version."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, created, ems_plan, session_body


def correct(api: TestClient, session_id: int, body: dict[str, Any]) -> Any:
    return api.post(f"/api/v1/sessions/{session_id}/corrections", json=body)


def assert_not_corrected(api: TestClient, session_id: int) -> None:
    assert api.get(f"/api/v1/sessions/{session_id}").json()["superseded_by_id"] is None
    kinds = [e["kind"] for e in api.get(f"/api/v1/sessions/{session_id}/events").json()]
    assert "correction" not in kinds


@pytest.mark.parametrize("field", ["started_at", "ended_at", "plan", "status", "notes", "outcome"])
def test_null_is_a_422_naming_the_field(api: TestClient, refs: dict[str, int], field: str) -> None:
    session = created(api, "/sessions", session_body(refs))
    problem = assert_problem(correct(api, session["id"], {"reason": "r", field: None}), 422, field)
    assert any("may not be null" in e["reason"] for e in problem["errors"])
    assert_not_corrected(api, session["id"])


def test_openapi_does_not_offer_null(api: TestClient) -> None:
    schema = api.get("/api/v1/openapi.json").json()["components"]["schemas"]["SessionCorrection"]
    for name in ("plan", "started_at", "ended_at", "status", "notes", "outcome"):
        assert {"type": "null"} not in schema["properties"][name].get("anyOf", []), name


def test_a_correction_naming_no_field_is_refused(api: TestClient, refs: dict[str, int]) -> None:
    session = created(api, "/sessions", session_body(refs))
    problem = assert_problem(correct(api, session["id"], {"reason": "r"}), 422, "body")
    assert "nothing to correct" in problem["errors"][0]["reason"]
    assert_not_corrected(api, session["id"])


def two_channels(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    common = {"pulse_width_us": 300, "frequency_hz": 35}
    return ems_plan(channels=[{**first, **common}, {**second, **common}])


SAME_PLAN = two_channels({"channel": 1, "amplitude_ma": 30}, {"channel": 2, "amplitude_ma": 30})
"""Channels in another order, the amplitude in µA instead of mA: the same plan as below."""
SAME_PLAN_REWRITTEN = two_channels(
    {"channel": 2, "amplitude_ua": 30_000}, {"channel": 1, "amplitude_ma": 30}
)


@pytest.mark.parametrize(
    "changes",
    [
        {"outcome": "tolerated well"},
        {"notes": "quadriceps strengthening", "status": "completed"},
        # The same instants, written in other zones.
        {"started_at": "2026-11-20T08:00:00Z", "ended_at": "2026-11-20T03:20:00-05:00"},
        {"plan": SAME_PLAN},
        {"plan": SAME_PLAN_REWRITTEN, "outcome": "tolerated well"},
    ],
)
def test_a_correction_that_changes_nothing_is_refused(
    api: TestClient, refs: dict[str, int], changes: dict[str, Any]
) -> None:
    session = created(api, "/sessions", session_body(refs, plan=SAME_PLAN))
    problem = assert_problem(correct(api, session["id"], {"reason": "r", **changes}), 422)
    assert problem["type"] == "/problems/unchanged-correction"
    assert sorted(e["field"] for e in problem["errors"]) == sorted(changes)
    assert_not_corrected(api, session["id"])


def test_a_correction_that_changes_one_field_of_several_is_stored(
    api: TestClient, refs: dict[str, int]
) -> None:
    session = created(api, "/sessions", session_body(refs))
    response = correct(
        api, session["id"], {"reason": "r", "outcome": "tolerated well", "notes": "new notes"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["notes"] == "new notes"


def test_a_version_that_cannot_be_corrected_is_still_a_409(
    api: TestClient, refs: dict[str, int]
) -> None:
    session = created(api, "/sessions", session_body(refs))
    assert correct(api, session["id"], {"reason": "r", "notes": "a"}).status_code == 201
    # Superseded: a 409 even for a correction that would change nothing.
    assert_problem(correct(api, session["id"], {"reason": "r"}), 409, "session_id")
