"""Timestamps are bounded at the edge: ISO 8601 with a zone, within the years a record can hold, and
a time that already happened is not in the future. Each refusal names the field and stores nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, created, session_body


def stored_sessions(api: TestClient) -> list[object]:
    items: list[object] = api.get("/api/v1/sessions").json()["items"]
    return items


def in_minutes(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"started_at": "0001-01-01T00:00:00+00:00"}, "started_at", "1970-01-01"),
        ({"ended_at": "9999-12-31T23:59:59+00:00"}, "ended_at", "2100-01-01"),
        ({"ended_at": "9999-12-31T23:59:59-05:00"}, "ended_at", "2100-01-01"),
        ({"started_at": "1969-12-31T23:59:59Z"}, "started_at", "1970-01-01"),
        (
            {"started_at": "2099-03-01T09:00:00+01:00", "ended_at": "2099-03-01T09:20:00+01:00"},
            "started_at",
            "in the future",
        ),
        ({"ended_at": "2099-03-01T09:20:00+01:00"}, "ended_at", "in the future"),
        ({"started_at": 1700000000}, "started_at", "not a number"),
        ({"started_at": 1700000000.5}, "started_at", "not a number"),
        ({"started_at": "1700000000"}, "started_at", "ISO 8601"),
        ({"started_at": "2026-11-20"}, "started_at", "ISO 8601"),
        ({"started_at": "2026-11-20T09:00:00"}, "started_at", "timezone"),
    ],
)
def test_a_recorded_session_with_an_unbounded_time_is_refused(
    api: TestClient, refs: dict[str, int], overrides: dict[str, object], field: str, reason: str
) -> None:
    response = api.post("/api/v1/sessions", json=session_body(refs, **overrides))
    problem = assert_problem(response, 422, field)
    reasons = [e["reason"] for e in problem["errors"] if e["field"] == field]
    assert any(reason in r for r in reasons), reasons
    assert stored_sessions(api) == []


def test_a_start_within_the_clock_difference_allowed_is_accepted(
    api: TestClient, refs: dict[str, int]
) -> None:
    response = api.post(
        "/api/v1/sessions",
        json=session_body(refs, started_at=in_minutes(-20), ended_at=in_minutes(1)),
    )
    assert response.status_code == 201, response.text
    refused = api.post(
        "/api/v1/sessions",
        json=session_body(refs, started_at=in_minutes(-20), ended_at=in_minutes(30)),
    )
    assert_problem(refused, 422, "ended_at")


def test_the_earliest_instant_is_accepted(api: TestClient, refs: dict[str, int]) -> None:
    response = api.post(
        "/api/v1/sessions",
        json=session_body(
            refs, started_at="1970-01-01T01:00:00+01:00", ended_at="1970-01-01T00:20:00Z"
        ),
    )
    assert response.status_code == 201, response.text
    assert response.json()["started_at"].startswith("1970-01-01T00:00:00")


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("notes", {"text": "later"}),
        ("adverse-events", {"description": "redness", "severity": "mild"}),
    ],
)
@pytest.mark.parametrize(
    "occurred_at", ["2099-01-01T00:00:00Z", 1700000000, "0001-01-01T00:00:00Z"]
)
def test_an_event_time_is_bounded_too(
    api: TestClient, refs: dict[str, int], route: str, body: dict[str, object], occurred_at: object
) -> None:
    session = created(api, "/sessions", session_body(refs))
    response = api.post(
        f"/api/v1/sessions/{session['id']}/{route}", json={**body, "occurred_at": occurred_at}
    )
    assert_problem(response, 422, "occurred_at")
    kinds = [e["kind"] for e in api.get(f"/api/v1/sessions/{session['id']}/events").json()]
    assert kinds.count("note") + kinds.count("adverse_event") == 0


def test_a_correction_time_is_bounded_too(api: TestClient, refs: dict[str, int]) -> None:
    session = created(api, "/sessions", session_body(refs))
    for field, value in (("started_at", 1700000000), ("ended_at", "2099-01-01T00:00:00Z")):
        response = api.post(
            f"/api/v1/sessions/{session['id']}/corrections", json={"reason": "r", field: value}
        )
        assert_problem(response, 422, field)
    assert api.get(f"/api/v1/sessions/{session['id']}").json()["superseded_by_id"] is None


@pytest.mark.parametrize(
    "path", ["/api/v1/sessions", "/api/v1/analytics/summary", "/api/v1/analytics/export"]
)
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("since", "-1"),
        ("since", "1700000000"),
        ("until", "1700000000.5"),
        ("since", "0001-01-01T00:00:00Z"),
        ("until", "9999-12-31T23:59:59Z"),
        ("since", "1969-12-31"),
    ],
)
def test_a_filter_time_is_bounded_and_never_a_number(
    api: TestClient, path: str, param: str, value: str
) -> None:
    assert_problem(api.get(path, params={param: value}), 422, param)


def test_a_filter_may_reach_into_the_future(api: TestClient, refs: dict[str, int]) -> None:
    created(api, "/sessions", session_body(refs))
    response = api.get("/api/v1/sessions", params={"since": "1970-01-01", "until": "2099-12-31"})
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 1
