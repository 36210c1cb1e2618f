"""A session's events and telemetry belong to its whole chain of versions, and analytics say so.

Correcting a session (a new version) must not take its adverse events, notes or telemetry away: the
summary (from the day rollup and from the sessions), the ``has_adverse_event`` filter, the CSV and
FHIR exports, the event list and the stored telemetry all read them across the chain, on the latest
version. An adverse event sent to a superseded version is accepted and counted on the latest one.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from sessionlog.analytics.aggregates import parse_group_by, summarise
from sessionlog.analytics.filters import SessionFilter
from sessionlog.sessions.recorder import pack_int32
from sessionlog.store import migrations
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import SessionChain, TelemetryBlock
from tests.analytics.test_day_summary import check_every_query, session_values
from tests.api.conftest import created, session_body
from tests.store.rollup_rows import Refs, add_event, add_session, clear_marks, make_refs, marks

ADVERSE = {"description": "skin redness under the electrode", "severity": "mild"}


@pytest.fixture
def people(api: TestClient) -> dict[str, int]:
    """The practitioner, client and device the recorded sessions name."""
    user = created(
        api, "/users", {"username": "pat", "display_name": "Pat", "role": "practitioner"}
    )
    client = created(api, "/clients", {"code": "C-CHAIN"})
    device = created(
        api, "/devices", {"driver": "simulated", "serial_number": "SIM-C", "model": "Reference"}
    )
    return {"practitioner_id": user["id"], "client_id": client["id"], "device_id": device["id"]}


def _summary(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/analytics/summary", params=params)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


def _adverse_total(api: TestClient, **params: Any) -> int:
    return sum(row["adverse_event_count"] for row in _summary(api, **params))


def _adverse_counts(api: TestClient) -> dict[str, int]:
    """The adverse-event count by every path: rollup, base statement, day groups, both exports."""
    csv_text = api.get("/api/v1/analytics/export", params={"format": "csv"}).text
    exported = {
        int(row["session_id"]): int(row["adverse_event_count"])
        for row in csv.DictReader(io.StringIO(csv_text))
    }
    bundle = json.loads(api.get("/api/v1/analytics/export", params={"format": "fhir"}).text)
    complications = sum(
        len(entry["resource"].get("complication", []))
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Procedure"
    )
    return {
        "rollup": _adverse_total(api),
        "rollup_by_month": _adverse_total(api, group_by="month,modality"),
        "sessions_by_site": _adverse_total(api, group_by="body_site"),
        "csv": sum(exported.values()),
        "fhir": complications,
    }


def _ids(api: TestClient, **params: Any) -> list[int]:
    response = api.get("/api/v1/sessions", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _correct(api: TestClient, session_id: int, **changes: Any) -> dict[str, Any]:
    response = api.post(
        f"/api/v1/sessions/{session_id}/corrections", json={"reason": "fix", **changes}
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_correction_keeps_the_sessions_adverse_events_in_every_analytics_path(
    api: TestClient, people: dict[str, int]
) -> None:
    original = created(api, "/sessions", session_body(people, adverse_events=[ADVERSE]))
    assert set(_adverse_counts(api).values()) == {1}

    corrected = _correct(api, original["id"], notes="notes typed again")

    assert _adverse_counts(api) == dict.fromkeys(_adverse_counts(api), 1)
    assert _ids(api, has_adverse_event="true") == [corrected["id"]]
    assert _ids(api, has_adverse_event="false") == []
    events = api.get(f"/api/v1/sessions/{corrected['id']}/events").json()
    assert [e["kind"] for e in events] == ["adverse_event", "correction"]
    assert events[0]["session_id"] == original["id"]


def test_an_adverse_event_sent_to_a_superseded_version_counts_on_the_latest(
    api: TestClient, people: dict[str, int]
) -> None:
    original = created(api, "/sessions", session_body(people, adverse_events=[ADVERSE]))
    second = _correct(api, original["id"], notes="second")
    # The latest version moves to another day: the rollup must count the events on that day.
    later_start = "2026-11-23T09:00:00+00:00"
    latest = _correct(
        api, second["id"], started_at=later_start, ended_at="2026-11-23T09:20:00+00:00"
    )

    late = api.post(f"/api/v1/sessions/{original['id']}/adverse-events", json=ADVERSE)
    assert late.status_code == 201, late.text
    assert late.json()["session_id"] == original["id"]
    on_second = api.post(f"/api/v1/sessions/{second['id']}/adverse-events", json=ADVERSE)
    assert on_second.status_code == 201, on_second.text

    assert _adverse_counts(api) == dict.fromkeys(_adverse_counts(api), 3)
    by_day = _summary(api, group_by="day")
    assert [(row["group"]["period_start"], row["adverse_event_count"]) for row in by_day] == [
        ("2026-11-23", 3)
    ]
    listed = api.get(f"/api/v1/sessions/{latest['id']}/events").json()
    assert sum(e["kind"] == "adverse_event" for e in listed) == 3
    assert api.get(f"/api/v1/sessions/{original['id']}/events").json() == listed

    removed = api.post(
        f"/api/v1/sessions/{latest['id']}/entered-in-error", json={"reason": "wrong client"}
    )
    assert removed.status_code == 201, removed.text
    assert _adverse_total(api) == 0
    assert _ids(api, has_adverse_event="true") == []


def test_a_corrected_sessions_telemetry_is_read_through_any_version(
    api: TestClient, people: dict[str, int]
) -> None:
    original = created(api, "/sessions", session_body(people))
    engine: Engine = api.app.state.engine  # type: ignore[attr-defined]
    with session_scope(engine) as db:
        db.add(
            TelemetryBlock(
                session_id=original["id"],
                seq=0,
                channel=1,
                t0=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
                n=3,
                offsets_ms=pack_int32([0, 100, 200]),
                current_ua=pack_int32([1000, 2000, 3000]),
                impedance_ohm=pack_int32([500, 500, 500]),
            )
        )
    corrected = _correct(api, original["id"], outcome="tolerated")

    before = api.get(f"/api/v1/sessions/{original['id']}/telemetry").json()
    after = api.get(f"/api/v1/sessions/{corrected['id']}/telemetry").json()
    assert after == before
    assert [(s["channel"], s["samples"], s["current_ua"]) for s in after] == [
        (1, 3, [1000.0, 2000.0, 3000.0])
    ]


# --- the store and the rollup ----------------------------------------------------------------------

MONDAY = datetime(2026, 3, 2, 10, tzinfo=UTC)


def _chain_links(engine: Engine) -> set[tuple[int, int]]:
    with engine.connect() as connection:
        rows = connection.execute(select(SessionChain.session_id, SessionChain.root_id)).all()
    return {(int(a), int(b)) for a, b in rows}


def test_the_database_links_every_later_version_to_its_root(engine: Engine) -> None:
    refs = make_refs(engine)
    root = add_session(engine, refs, started_at=MONDAY)
    second = add_session(engine, refs, started_at=MONDAY, supersedes_id=root)
    third = add_session(engine, refs, started_at=MONDAY, supersedes_id=second)
    assert _chain_links(engine) == {(second, root), (third, root)}
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text("UPDATE session SET supersedes_id = NULL WHERE id = :id"), {"id": third}
        )
    with pytest.raises(IntegrityError):
        add_session(engine, refs, started_at=MONDAY, supersedes_id=second)
    assert _chain_links(engine) == {(second, root), (third, root)}


def test_an_adverse_event_on_a_superseded_version_marks_the_latest_versions_day(
    engine: Engine,
) -> None:
    refs = make_refs(engine)
    root = add_session(engine, refs, started_at=MONDAY)
    later = MONDAY + timedelta(days=9)
    add_session(engine, refs, started_at=later, supersedes_id=root, modality="microcurrent")
    clear_marks(engine)
    add_event(engine, root, "adverse_event", MONDAY)
    assert (True, later.date(), "microcurrent") in marks(engine)


operations = st.one_of(
    st.tuples(st.just("correct"), st.integers(0, 99), session_values()),
    st.tuples(st.just("remove"), st.integers(0, 99)),
    st.tuples(st.just("adverse"), st.integers(0, 99), st.integers(0, 5)),
)


class Chains:
    """Sessions written as chains of versions, with what analytics must count for each chain."""

    def __init__(self, engine: Engine, refs: Refs) -> None:
        self.engine = engine
        self.refs = refs
        self.versions: list[list[tuple[int, dict[str, Any]]]] = []
        self.adverse: list[int] = []

    def start(self, values: dict[str, Any]) -> None:
        self.versions.append([(add_session(self.engine, self.refs, **values), values)])
        self.adverse.append(0)

    def apply(self, operation: tuple[Any, ...]) -> None:
        chain = operation[1] % len(self.versions)
        latest_id, latest_values = self.versions[chain][-1]
        if operation[0] in ("correct", "remove"):
            values = (
                operation[2]
                if operation[0] == "correct"
                else {**latest_values, "status": "entered_in_error"}
            )
            new_id = add_session(self.engine, self.refs, supersedes_id=latest_id, **values)
            self.versions[chain].append((new_id, values))
        else:
            # On any version of the chain, superseded ones included.
            versions = self.versions[chain]
            target = versions[operation[2] % len(versions)][0]
            add_event(self.engine, target, "adverse_event", MONDAY)
            self.adverse[chain] += 1

    def expected(self) -> tuple[int, int]:
        """Counted sessions, and their adverse events, of an unfiltered summary."""
        kept = [
            index
            for index, versions in enumerate(self.versions)
            if versions[-1][1]["status"] != "entered_in_error"
        ]
        return len(kept), sum(self.adverse[index] for index in kept)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(session_values(), min_size=1, max_size=6),
    writes=st.lists(operations, max_size=12),
)
def test_the_rollup_and_the_sessions_count_each_chain_once_with_all_its_adverse_events(
    engine: Engine, first: list[dict[str, Any]], writes: list[tuple[Any, ...]]
) -> None:
    chains = Chains(engine, make_refs(engine))
    baseline = _unfiltered(engine)
    for values in first:
        chains.start(values)
    for operation in writes:
        chains.apply(operation)
    check_every_query(engine)
    sessions, adverse = _unfiltered(engine)
    assert (sessions - baseline[0], adverse - baseline[1]) == chains.expected()


def _unfiltered(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as db:
        for use_rollup in (True, False):
            rows = summarise(db, SessionFilter(), parse_group_by(None), use_rollup=use_rollup)
            figures = (
                int(rows[0].metrics["session_count"] or 0),
                int(rows[0].metrics["adverse_event_count"] or 0),
            )
            if use_rollup:
                from_rollup = figures
    assert from_rollup == figures
    return figures


# --- the migration ---------------------------------------------------------------------------------


def test_the_migration_links_stored_chains_and_keeps_old_forks(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        migrations.upgrade(engine, "0005")
        with engine.begin() as connection:
            # Rows as the old schema stored them (no link table yet), forks included.
            connection.execute(
                text(
                    "INSERT INTO app_user (username, display_name, role, active, "
                    "created_at, updated_at, version) VALUES ('u', 'U', "
                    "'practitioner', true, '2026-01-01', '2026-01-01', 1)"
                )
            )
        refs = _old_refs(engine)
        root = _old_session(engine, refs, None)
        second = _old_session(engine, refs, root)
        third = _old_session(engine, refs, second)
        fork_a = _old_session(engine, refs, third)
        fork_b = _old_session(engine, refs, third)
        plain = _old_session(engine, refs, None)
        _old_adverse_event(engine, root)

        migrations.upgrade(engine)

        assert _chain_links(engine) == {
            (second, root),
            (third, root),
            (fork_a, root),
            (fork_b, root),
        }
        # Both tips of the old fork are latest versions; the event on the root counts on each.
        sessions, adverse = _unfiltered(engine)
        assert (sessions, adverse) == (3, 2)
        # Everything else is checked: a version that is not forked gets one successor only.
        add = _old_session(engine, refs, plain)
        assert _chain_links(engine) >= {(add, plain)}
        with pytest.raises(IntegrityError):
            _old_session(engine, refs, plain)
        migrations.downgrade(engine, "0005")
        migrations.upgrade(engine)
    finally:
        engine.dispose()


def _old_refs(engine: Engine) -> Refs:
    with engine.begin() as connection:
        user = connection.execute(text("SELECT id FROM app_user")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO client (code, contraindications, created_at, updated_at, version) "
                "VALUES ('c', '[]', '2026-01-01', '2026-01-01', 1)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO device (driver, serial_number, model, created_at, updated_at, "
                "version) VALUES ('simulated', 'S', 'M', '2026-01-01', '2026-01-01', 1)"
            )
        )
        client = connection.execute(text("SELECT id FROM client")).scalar_one()
        device = connection.execute(text("SELECT id FROM device")).scalar_one()
    return Refs(int(client), int(user), int(device))


def _old_session(engine: Engine, refs: Refs, supersedes: int | None) -> int:
    with engine.begin() as connection:
        return int(
            connection.execute(
                text(
                    "INSERT INTO session (client_id, practitioner_id, device_id, supersedes_id, "
                    "mode, status, modality, body_site, electrode_area_cm2, planned_duration_s, "
                    "started_at, ended_at, out_of_limits, violations, link_errors, created_at) "
                    "VALUES (:client, :user, :device, :supersedes, 'recorded', 'completed', "
                    "'ems', 'calf', 25, 1200, :start, :end, false, '[]', '{}', :start) "
                    "RETURNING id"
                ),
                {
                    "client": refs.client_id,
                    "user": refs.practitioner_id,
                    "device": refs.device_id,
                    "supersedes": supersedes,
                    "start": MONDAY,
                    "end": MONDAY + timedelta(minutes=20),
                },
            ).scalar_one()
        )


def _old_adverse_event(engine: Engine, session_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO session_event (session_id, kind, occurred_at, recorded_at, payload) "
                "VALUES (:session, 'adverse_event', :at, :at, '{}')"
            ),
            {"session": session_id, "at": MONDAY},
        )
