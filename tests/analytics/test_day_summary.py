"""The day rollup answers exactly what the base statement answers, for any history, on both engines.

``summarise(..., use_rollup=False)`` is the reference: the grouped pass over ``session`` the summary
used before the rollup existed. Floating-point sums may differ in the last bits because the
database adds the same numbers in another order; everything else must be identical.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, select, text, update
from sqlmodel import Session, col

from sessionlog.analytics.aggregates import (
    METRICS,
    SummaryRow,
    parse_group_by,
    rollup_can_answer,
    summarise,
)
from sessionlog.analytics.day_summary import (
    DAY_FIGURES,
    KEY_COLUMNS,
    ROLLUP,
    current_day_figures,
    pending_keys,
    refresh_day_summary,
)
from sessionlog.analytics.filters import SessionFilter
from sessionlog.store.database import read_only, session_scope
from sessionlog.store.models import TreatmentSession
from sessionlog.store.rollup_triggers import mark_every_key_dirty
from tests.analytics.conftest import KnownHistory
from tests.store.rollup_rows import Refs, add_event, add_session, make_refs, marks, session_row

SUMMARY = "/api/v1/analytics/summary"
FIRST_DAY = datetime(2026, 1, 26, tzinfo=UTC)
"""A Monday six days before a month ends: generated days span weeks and three months."""

Query = tuple[str | None, dict[str, Any]]
QUERIES: list[Query] = [
    ("month,modality", {}),
    ("week", {}),
    ("day,modality", {}),
    ("modality", {}),
    (None, {}),
    ("month", {"since": "2026-02-01", "until": "2026-03-01"}),
    ("day", {"modality": ["microcurrent"], "since": "2026-01-31T00:00:00+00:00"}),
    ("week,modality", {"until": "2026-02-09T01:00:00+01:00"}),
]
"""Summaries the rollup answers: every time bucket, modality, and day-aligned filters."""

INELIGIBLE: list[Query] = [
    ("body_site", {}),
    ("program", {}),
    ("device", {}),
    ("practitioner", {}),
    ("client", {}),
    ("month,client", {}),
    ("month", {"status": ["completed"]}),
    ("month", {"status": ["entered_in_error"]}),
    ("month", {"client_id": [1]}),
    ("month", {"practitioner_id": [1]}),
    ("month", {"device_id": [1]}),
    ("month", {"driver": ["simulated"]}),
    ("month", {"program_id": [1]}),
    ("month", {"body_site": ["calf"]}),
    ("month", {"out_of_limits": True}),
    ("month", {"out_of_limits": False}),
    ("month", {"has_adverse_event": True}),
    ("month", {"has_adverse_event": False}),
    ("month", {"since": "2026-02-01T00:00:01+00:00"}),
    ("month", {"until": "2026-02-01T12:00:00+00:00"}),
    ("month", {"since": "2026-02-01T00:00:00+01:00"}),
]
"""Summaries that need the sessions themselves: another key, another filter, a partial day."""


def _query(query: Query) -> tuple[SessionFilter, Any]:
    group_by, filters = query
    return SessionFilter(**filters), parse_group_by(group_by)


def both_paths(db: Session, query: Query) -> tuple[list[SummaryRow], list[SummaryRow]]:
    session_filter, keys = _query(query)
    return (
        summarise(db, session_filter, keys),
        summarise(db, session_filter, keys, use_rollup=False),
    )


def assert_same_summary(rollup: list[SummaryRow], base: list[SummaryRow], query: Query) -> None:
    assert [r.group for r in rollup] == [r.group for r in base], query
    for ours, theirs in zip(rollup, base, strict=True):
        assert [type(v) for v in ours.group.values()] == [type(v) for v in theirs.group.values()]
        for metric in METRICS:
            mine, reference = ours.metrics[metric], theirs.metrics[metric]
            assert type(mine) is type(reference), (query, ours.group, metric, mine, reference)
            if isinstance(reference, float):
                assert mine == pytest.approx(reference, rel=1e-9), (query, ours.group, metric)
            else:
                assert mine == reference, (query, ours.group, metric)


def counted(rows: list[SummaryRow]) -> int:
    """Sessions over all groups of a summary."""
    return sum(int(row.metrics["session_count"] or 0) for row in rows)


def stored_and_recomputed(engine: Engine) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """The rollup rows as stored, and the same rows recomputed from ``session`` from scratch."""
    columns = [*KEY_COLUMNS, *DAY_FIGURES]

    def by_key(rows: Any) -> dict[Any, Any]:
        return {(bool(r[0]), r[1], r[2]): tuple(r[3:]) for r in rows}

    with engine.connect() as connection:
        stored = by_key(connection.execute(select(*[ROLLUP.c[c] for c in columns])).all())
    with engine.connect() as connection:
        transaction = connection.begin()
        mark_every_key_dirty(connection)  # every key marked: the reading statement recomputes all
        days = current_day_figures(engine.dialect.name)
        recomputed = by_key(connection.execute(select(*[days.c[c] for c in columns])).all())
        transaction.rollback()
    return stored, recomputed


def assert_rollup_is_exact(engine: Engine) -> None:
    stored, recomputed = stored_and_recomputed(engine)
    assert stored.keys() == recomputed.keys()
    for key, figures in stored.items():
        for name, mine, reference in zip(DAY_FIGURES, figures, recomputed[key], strict=True):
            if isinstance(reference, float):
                assert mine == pytest.approx(reference, rel=1e-9), (key, name)
            else:
                assert mine == reference, (key, name)


def check_every_query(engine: Engine) -> None:
    for query in QUERIES:
        assert rollup_can_answer(*_query(query)), query
        with session_scope(engine) as db:
            rollup, base = both_paths(db, query)
        assert_same_summary(rollup, base, query)
    with engine.connect() as connection:
        assert pending_keys(connection) == 0, "a summary refreshes the rollup before reading it"
    assert_rollup_is_exact(engine)


# --- any history ---------------------------------------------------------------------------------

STATUSES = (
    "planned",
    "running",
    "paused",
    "completed",
    "stopped",
    "aborted",
    "interrupted",
    "entered_in_error",
)
OPEN = {"planned", "running", "paused"}
doses = st.none() | st.floats(
    min_value=0, max_value=10_000, allow_nan=False, allow_infinity=False, allow_subnormal=False
)


@st.composite
def session_values(draw: st.DrawFn) -> dict[str, Any]:
    """A session as the store holds one: planned ones have no start, open ones no end."""
    status = draw(st.sampled_from(STATUSES))
    started = None
    if status != "planned":
        started = FIRST_DAY + timedelta(
            days=draw(st.integers(0, 40)), seconds=draw(st.integers(0, 86_399))
        )
    minutes = None
    if status not in OPEN:
        minutes = draw(st.integers(0, 90)) + draw(st.integers(0, 999_999)) / 1_000_000
    return {
        "status": status,
        "started_at": started,
        "minutes": minutes,
        "modality": draw(st.sampled_from(["ems", "microcurrent"])),
        "out_of_limits": draw(st.booleans()),
        "dose_total_charge_uc": draw(doses),
        "dose_on_time_s": draw(doses),
        "dose_max_current_density_ma_cm2": draw(doses),
    }


operations = st.one_of(
    st.tuples(st.just("correct"), st.integers(0, 99), session_values()),
    st.tuples(st.just("remove"), st.integers(0, 99)),
    st.tuples(st.just("adverse"), st.integers(0, 99)),
    st.tuples(st.just("finish"), st.integers(0, 99), st.integers(0, 40)),
)


class History:
    """The sessions one example wrote, and the writes it makes to them."""

    def __init__(self, engine: Engine, refs: Refs) -> None:
        self.engine = engine
        self.refs = refs
        self.ids: list[int] = []
        self.values: dict[int, dict[str, Any]] = {}
        self.successor: dict[int, int] = {}

    def add(self, values: dict[str, Any], supersedes: int | None = None) -> None:
        session_id = add_session(self.engine, self.refs, supersedes_id=supersedes, **values)
        self.ids.append(session_id)
        self.values[session_id] = values
        if supersedes is not None:
            self.successor[supersedes] = session_id

    def latest(self, session_id: int) -> int:
        """The current version of ``session_id``'s chain: only it can be corrected."""
        while session_id in self.successor:
            session_id = self.successor[session_id]
        return session_id

    def apply(self, operation: tuple[Any, ...]) -> None:
        kind, index = operation[0], operation[1]
        target = self.ids[index % len(self.ids)]
        values = self.values[target]
        if kind == "correct":
            self.add(operation[2], supersedes=self.latest(target))
        elif kind == "remove":
            latest = self.latest(target)
            self.add({**self.values[latest], "status": "entered_in_error"}, supersedes=latest)
        elif kind == "adverse":
            add_event(self.engine, target, "adverse_event", FIRST_DAY + timedelta(days=60))
        elif kind == "finish" and values["status"] in OPEN:
            # A plain UPDATE, not the ORM: the triggers must see every kind of write.
            started = values["started_at"] or FIRST_DAY + timedelta(days=operation[2], hours=9)
            with self.engine.begin() as connection:
                connection.execute(
                    update(TreatmentSession)
                    .where(col(TreatmentSession.id) == target)
                    .values(
                        status="completed",
                        started_at=started,
                        ended_at=started + timedelta(minutes=25),
                        dose_total_charge_uc=1234.5,
                    )
                )
            self.values[target] = {**values, "status": "completed", "started_at": started}


# The database is shared by the examples on purpose: each one adds to the history the earlier ones
# left, and every assertion compares two answers over the whole database.
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(session_values(), min_size=1, max_size=10),
    before=st.lists(operations, max_size=8),
    after=st.lists(operations, max_size=8),
)
def test_the_rollup_answers_what_the_sessions_answer_for_any_history(
    engine: Engine,
    first: list[dict[str, Any]],
    before: list[tuple[Any, ...]],
    after: list[tuple[Any, ...]],
) -> None:
    history = History(engine, make_refs(engine))
    for values in first:
        history.add(values)
    for operation in before:
        history.apply(operation)
    check_every_query(engine)
    # More writes between two summaries: corrections, removals, late adverse events, starts.
    for operation in after:
        history.apply(operation)
    check_every_query(engine)


# --- which summaries the rollup answers -----------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_day_aligned_time_and_modality_summaries_are_answered_by_the_rollup(query: Query) -> None:
    assert rollup_can_answer(*_query(query))


@pytest.mark.parametrize("query", INELIGIBLE, ids=str)
def test_other_keys_filters_and_partial_days_are_not(query: Query) -> None:
    assert not rollup_can_answer(*_query(query))


def test_eligible_summaries_read_the_rollup_and_the_others_the_sessions(
    history: KnownHistory,
) -> None:
    engine = history.engine
    with session_scope(engine) as db:
        summarise(db, SessionFilter(), ())  # builds the rollup
    # Damage the rollup behind the triggers' back: only answers read from it can show it.
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE session_day_summary SET session_count = session_count + 1000")
        )
    with session_scope(engine) as db:
        for query in INELIGIBLE:
            session_filter, keys = _query(query)
            base = summarise(db, session_filter, keys, use_rollup=False)
            assert summarise(db, session_filter, keys) == base, query
        rollup, base = both_paths(db, (None, {}))
    assert counted(rollup) > counted(base) + 1000
    # Marking every key is how a damaged (or redefined) rollup is rebuilt.
    with engine.begin() as connection:
        mark_every_key_dirty(connection)
    with session_scope(engine) as db:
        rollup, base = both_paths(db, (None, {}))
    assert_same_summary(rollup, base, (None, {}))


# --- the refresh ----------------------------------------------------------------------------------


def test_a_refresh_in_small_batches_rebuilds_every_key_and_clears_the_marks(engine: Engine) -> None:
    refs = make_refs(engine)
    for day in range(7):
        add_session(engine, refs, started_at=FIRST_DAY + timedelta(days=day, hours=9))
    report = refresh_day_summary(engine, batch_keys=2)
    assert (report.keys, report.batches) == (7, 4)
    assert marks(engine) == set()
    assert_rollup_is_exact(engine)
    assert refresh_day_summary(engine) == type(report)(0, 0)


def test_the_last_representable_day_is_rolled_up_like_any_other(engine: Engine) -> None:
    """A day whose next day cannot be written (9999-12-31) still has its range of start times."""
    refs = make_refs(engine)
    add_session(engine, refs, started_at=datetime(9999, 12, 31, 9, 0, tzinfo=UTC))
    add_session(engine, refs, started_at=FIRST_DAY)
    refresh_day_summary(engine)
    assert_rollup_is_exact(engine)
    with session_scope(engine) as db:
        rollup, base = both_paths(db, ("day,modality", {}))
    assert_same_summary(rollup, base, ("day,modality", {}))
    assert counted(rollup) == 2


def test_a_summary_inside_a_transaction_that_wrote_counts_its_own_writes(engine: Engine) -> None:
    refs = make_refs(engine)
    add_session(engine, refs, started_at=FIRST_DAY)
    with session_scope(engine) as db:
        db.add(
            session_row(refs, started_at=FIRST_DAY + timedelta(hours=2), modality="microcurrent")
        )
        db.flush()
        # On SQLite this transaction holds the write lock: the refresh must run inside it.
        rollup, base = both_paths(db, ("day,modality", {}))
        assert_same_summary(rollup, base, ("day,modality", {}))
        assert counted(rollup) == 2


def test_a_read_only_session_answers_from_its_own_snapshot_while_others_write(
    engine: Engine,
) -> None:
    refs = make_refs(engine)
    first = add_session(engine, refs, started_at=FIRST_DAY)
    with Session(read_only(engine)) as db:
        both_paths(db, ("month,modality", {}))  # the read transaction is open from here
        add_session(engine, refs, started_at=FIRST_DAY + timedelta(days=1))  # another writer
        add_event(engine, first, "adverse_event", FIRST_DAY)
        rollup, base = both_paths(db, ("month,modality", {}))
        db.rollback()
    assert_same_summary(rollup, base, ("month,modality", {}))
    with session_scope(engine) as db:
        rollup, base = both_paths(db, ("month,modality", {}))
    assert_same_summary(rollup, base, ("month,modality", {}))
    assert rollup[0].metrics["session_count"] == 2


def _postgresql_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip(
            "a SQLite writer waits for the refresh's write lock: nothing can land meanwhile"
        )


def test_a_write_uncommitted_during_a_refresh_keeps_its_mark(engine: Engine) -> None:
    _postgresql_only(engine)
    refs = make_refs(engine)
    add_session(engine, refs, started_at=FIRST_DAY)
    with engine.connect() as writer:
        writer.begin()
        late = session_row(refs, started_at=FIRST_DAY + timedelta(hours=3)).model_dump(
            exclude={"id"}
        )
        writer.execute(TreatmentSession.__table__.insert(), [late])  # type: ignore[attr-defined]
        refresh_day_summary(engine)  # neither waits for the writer nor sees its mark
        writer.commit()
    assert marks(engine) == {(True, FIRST_DAY.date(), "ems")}
    with session_scope(engine) as db:
        rollup, base = both_paths(db, ("day", {}))
    assert_same_summary(rollup, base, ("day", {}))
    assert rollup[0].metrics["session_count"] == 2


def test_a_write_committed_after_the_refresh_read_the_sessions_keeps_its_mark(
    engine: Engine,
) -> None:
    _postgresql_only(engine)
    refs = make_refs(engine)
    add_session(engine, refs, started_at=FIRST_DAY)
    landed: list[int] = []

    def write_once_rebuilt(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # Right after the refresh has read the sessions into the rollup, before it drops the marks
        # it claimed: a writer on another connection commits a session of the same day.
        if statement.startswith("INSERT INTO session_day_summary ") and not landed:
            landed.append(add_session(engine, refs, started_at=FIRST_DAY + timedelta(hours=5)))

    event.listen(engine, "after_cursor_execute", write_once_rebuilt)
    try:
        refresh_day_summary(engine)
    finally:
        event.remove(engine, "after_cursor_execute", write_once_rebuilt)
    assert landed, "the refresh rebuilt no day"
    assert marks(engine) == {(True, FIRST_DAY.date(), "ems")}
    with session_scope(engine) as db:
        rollup, base = both_paths(db, ("day", {}))
    assert_same_summary(rollup, base, ("day", {}))
    assert rollup[0].metrics["session_count"] == 2


# --- through the API ------------------------------------------------------------------------------


def test_the_summary_route_stays_exact_while_sessions_are_written(
    analytics_api: TestClient,
) -> None:
    engine: Engine = analytics_api.app.state.engine  # type: ignore[attr-defined]
    refs = make_refs(engine)
    written = 40
    failures: list[BaseException] = []

    def record_sessions() -> None:
        try:
            for n in range(written):
                day = FIRST_DAY + timedelta(days=n % 9, minutes=n)
                add_session(engine, refs, started_at=day, modality=("ems", "microcurrent")[n % 2])
        except BaseException as error:  # surfaced below: a dying writer must fail the test
            failures.append(error)

    writer = threading.Thread(target=record_sessions)
    writer.start()
    totals: list[int] = []
    while writer.is_alive() or not totals:
        response = analytics_api.get(SUMMARY, params={"group_by": "month,modality"})
        assert response.status_code == 200, response.text
        totals.append(sum(row["session_count"] for row in response.json()["rows"]))
    writer.join()
    assert not failures
    assert totals == sorted(totals), "a summary never loses a session it has counted"

    body = analytics_api.get(SUMMARY, params={"group_by": "month,modality"}).json()
    with session_scope(engine) as db:
        base = summarise(db, SessionFilter(), parse_group_by("month,modality"), use_rollup=False)
    assert [row["group"] for row in body["rows"]] == [
        {k: v.isoformat() if isinstance(v, date) else v for k, v in r.group.items()} for r in base
    ]
    assert [row["session_count"] for row in body["rows"]] == [
        r.metrics["session_count"] for r in base
    ]
    assert sum(row["session_count"] for row in body["rows"]) == written
