"""The analytics routes and the filtered, sorted session list: answers, paging, and 422 problems."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionlog.analytics.aggregates import METRICS
from tests.analytics.conftest import HISTORY, REMOVED, KnownHistory, Spec, write_history
from tests.api.conftest import assert_problem

SUMMARY = "/api/v1/analytics/summary"
SESSIONS = "/api/v1/sessions"
EXPORT = "/api/v1/analytics/export"


def listed_ids(api: TestClient, **params: Any) -> list[int]:
    """Every id of a listing, following cursors with a small page so paging is exercised."""
    ids: list[int] = []
    cursor = None
    while True:
        query = {**params, "limit": 3, **({"cursor": cursor} if cursor else {})}
        response = api.get(SESSIONS, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        ids.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


def test_summary_route_answers_month_and_modality(
    analytics_api: TestClient, history: KnownHistory
) -> None:
    response = analytics_api.get(SUMMARY, params={"group_by": "month,modality"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["group_by"] == ["month", "modality"]
    first = body["rows"][0]
    assert first["group"] == {"period_start": "2026-01-01", "modality": "ems"}
    assert set(METRICS) <= set(first)
    assert first["session_count"] == 2
    assert first["charge_total_uc"] == pytest.approx(1400.0)
    assert sum(r["session_count"] for r in body["rows"]) == len(
        [s for s in HISTORY if s.status != REMOVED]
    )


def _matches(spec: Spec, history: KnownHistory, name: str, value: Any) -> bool:
    checks = {
        "modality": lambda: spec.modality == value,
        "body_site": lambda: spec.body_site == value,
        "status": lambda: spec.status == value,
        "client_id": lambda: history.clients[spec.client] == value,
        "practitioner_id": lambda: history.practitioners[spec.practitioner] == value,
        "device_id": lambda: history.devices[spec.device] == value,
        "driver": lambda: history.drivers[spec.device] == value,
        "program_id": lambda: spec.program is not None and history.programs[spec.program] == value,
        "out_of_limits": lambda: spec.out_of_limits is value,
        "has_adverse_event": lambda: (spec.adverse_events > 0) is value,
        "since": lambda: spec.started_at >= datetime.fromisoformat(value),
        "until": lambda: spec.started_at < datetime.fromisoformat(value),
    }
    return checks[name]()


FILTER_CASES: list[tuple[str, Any]] = [
    ("modality", "microcurrent"),
    ("body_site", "calf"),
    ("status", "aborted"),
    ("status", REMOVED),
    ("client_id", 1),
    ("practitioner_id", 2),
    ("device_id", 1),
    ("driver", "rehastim2"),
    ("program_id", 0),
    ("out_of_limits", True),
    ("out_of_limits", False),
    ("has_adverse_event", True),
    ("has_adverse_event", False),
    ("since", "2026-02-01T00:00:00+00:00"),
    ("until", "2026-02-01T00:00:00+00:00"),
]


def test_each_filter_selects_exactly_the_matching_sessions(
    analytics_api: TestClient, history: KnownHistory
) -> None:
    for name, value in FILTER_CASES:
        _check_filter(analytics_api, history, name, value)


def _check_filter(analytics_api: TestClient, history: KnownHistory, name: str, value: Any) -> None:
    refs = {
        "client_id": "clients",
        "practitioner_id": "practitioners",
        "device_id": "devices",
        "program_id": "programs",
    }
    if name in refs:
        value = getattr(history, refs[name])[value]
    wanted = [
        session_id
        for session_id, spec in zip(history.ids, HISTORY, strict=True)
        if _matches(spec, history, name, value) and (spec.status != REMOVED or name == "status")
    ]
    query_value = str(value).lower() if isinstance(value, bool) else value
    assert wanted, f"the case {name}={value!r} must select something"
    assert listed_ids(analytics_api, **{name: query_value}) == wanted, (name, value)


def test_filters_combine_and_repeat(analytics_api: TestClient, history: KnownHistory) -> None:
    ids = listed_ids(
        analytics_api, modality="ems", body_site=["calf", "lower_back"], since="2026-01-01"
    )
    wanted = [
        i
        for i, s in zip(history.ids, HISTORY, strict=True)
        if s.modality == "ems" and s.body_site in ("calf", "lower_back") and s.status != REMOVED
    ]
    assert ids == wanted


SORTS = ["-dose_total_charge_uc", "dose_total_charge_uc", "-started_at", "body_site", "-id"]


def test_sorted_pages_follow_the_order_with_nulls_last_and_ties_by_id(
    analytics_api: TestClient, history: KnownHistory
) -> None:
    for sort in SORTS:
        _check_sort(analytics_api, history, sort)


def _check_sort(analytics_api: TestClient, history: KnownHistory, sort: str) -> None:
    field = sort.removeprefix("-")
    descending = sort.startswith("-")
    attribute = {
        "dose_total_charge_uc": "charge_uc",
        "started_at": "started_at",
        "body_site": "body_site",
        "id": None,
    }[field]
    rows = [
        (i, getattr(s, attribute) if attribute else i)
        for i, s in zip(history.ids, HISTORY, strict=True)
        if s.status != REMOVED
    ]
    present = sorted(
        [r for r in rows if r[1] is not None],
        key=lambda r: (r[1], r[0]),
        reverse=descending,
    )
    expected = [r[0] for r in present] + sorted(
        (r[0] for r in rows if r[1] is None), reverse=descending
    )
    assert listed_ids(analytics_api, sort=sort) == expected, sort


def test_paging_neither_skips_nor_repeats_when_sessions_arrive_meanwhile(
    analytics_api: TestClient, history: KnownHistory
) -> None:
    first = analytics_api.get(SESSIONS, params={"sort": "-dose_total_charge_uc", "limit": 4}).json()
    seen = [item["id"] for item in first["items"]]
    write_history(history.engine, tag="-later")  # sessions recorded between two pages
    cursor = first["next_cursor"]
    while cursor:
        page = analytics_api.get(
            SESSIONS, params={"sort": "-dose_total_charge_uc", "limit": 4, "cursor": cursor}
        ).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen))
    assert set(history.ids) - {history.ids[-1]} <= set(seen)


BAD_INPUT: list[tuple[str, dict[str, str], str]] = [
    (SESSIONS, {"colour": "red"}, "colour"),
    (SUMMARY, {"modalty": "ems"}, "modalty"),
    (EXPORT, {"format": "csv", "client": "1"}, "client"),
    (SESSIONS, {"since": "2026-02-01", "until": "2026-01-01"}, "until"),
    (SUMMARY, {"since": "2026-02-01", "until": "2026-02-01"}, "until"),
    (SUMMARY, {"since": "2026-02-01T10:00:00"}, "since"),
    (SUMMARY, {"since": "yesterday"}, "since"),
    (SUMMARY, {"group_by": "month,colour"}, "group_by"),
    (SUMMARY, {"group_by": "week,month"}, "group_by"),
    (EXPORT, {"format": "xlsx"}, "format"),
    (SESSIONS, {"sort": "password"}, "sort"),
    (SESSIONS, {"modality": "tens"}, "modality"),
    (SESSIONS, {"client_id": "0"}, "client_id"),
    (SESSIONS, {"status": "deleted"}, "status"),
    (SESSIONS, {"out_of_limits": "maybe"}, "out_of_limits"),
    (SESSIONS, {"cursor": "not-a-cursor"}, "cursor"),
    (SESSIONS, {"driver": "sim\x00ulated"}, "driver"),
    (SUMMARY, {"until": "9999-12-31T23:59:59-23:59"}, "until"),
    (SESSIONS, {"limit": "100000"}, "limit"),
]


def test_bad_input_is_a_422_problem_naming_the_field(analytics_api: TestClient) -> None:
    for path, params, field in BAD_INPUT:
        problem = assert_problem(analytics_api.get(path, params=params), 422, field)
        assert problem["type"] == "/problems/validation", (path, params)


def test_a_cursor_is_refused_under_another_sort_order(
    analytics_api: TestClient, history: KnownHistory
) -> None:
    page = analytics_api.get(SESSIONS, params={"sort": "-started_at", "limit": 2}).json()
    response = analytics_api.get(
        SESSIONS, params={"sort": "started_at", "cursor": page["next_cursor"]}
    )
    assert_problem(response, 422, "cursor")


def test_plain_listing_still_pages_by_id(analytics_api: TestClient, history: KnownHistory) -> None:
    assert listed_ids(analytics_api) == [
        i for i, s in zip(history.ids, HISTORY, strict=True) if s.status != REMOVED
    ]


@pytest.mark.parametrize("path", [SUMMARY, EXPORT, SESSIONS])
def test_analytics_need_credentials(analytics_anonymous: TestClient, path: str) -> None:
    assert_problem(analytics_anonymous.get(path), 401)
