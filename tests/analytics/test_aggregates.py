"""The grouped summary equals sums computed independently from the known history, on both engines."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import pytest

from sessionlog.analytics.aggregates import GroupKey, parse_group_by, summarise
from sessionlog.analytics.filters import AnalyticsInputError, SessionFilter
from sessionlog.store.database import session_scope
from tests.analytics.conftest import HISTORY, REMOVED, KnownHistory, Spec


def counted(specs: tuple[Spec, ...] = HISTORY) -> list[Spec]:
    return [s for s in specs if s.status != REMOVED]


def period(spec: Spec, unit: str) -> date:
    day = spec.started_at.date()
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def expected_figures(specs: list[Spec]) -> dict[str, Any]:
    durations = [s.minutes * 60 for s in specs if s.minutes is not None]
    charges = [s.charge_uc for s in specs if s.charge_uc is not None]
    densities = [s.density_ma_cm2 for s in specs if s.density_ma_cm2 is not None]
    on_times = [s.on_time_s for s in specs if s.on_time_s is not None]
    return {
        "session_count": len(specs),
        "duration_total_s": sum(durations) if durations else None,
        "duration_mean_s": sum(durations) / len(durations) if durations else None,
        "charge_total_uc": sum(charges) if charges else None,
        "charge_mean_uc": sum(charges) / len(charges) if charges else None,
        "current_density_mean_ma_cm2": sum(densities) / len(densities) if densities else None,
        "current_density_max_ma_cm2": max(densities) if densities else None,
        "on_time_total_s": sum(on_times) if on_times else None,
        "adverse_event_count": sum(s.adverse_events for s in specs),
        "aborted_count": sum(s.status == "aborted" for s in specs),
        "interrupted_count": sum(s.status == "interrupted" for s in specs),
        "out_of_limits_count": sum(s.out_of_limits for s in specs),
    }


def assert_figures(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        if value is None or isinstance(value, int):
            assert actual[name] == value, name
        else:
            assert actual[name] == pytest.approx(value, rel=1e-9, abs=1e-6), name


def run(history: KnownHistory, group_by: str | None, **filters: Any) -> list[Any]:
    with session_scope(history.engine) as db:
        return summarise(db, SessionFilter(**filters), parse_group_by(group_by))


def test_summary_by_month_and_modality_matches_independent_sums(history: KnownHistory) -> None:
    groups: dict[tuple[date, str], list[Spec]] = defaultdict(list)
    for spec in counted():
        groups[(period(spec, "month"), spec.modality)].append(spec)

    rows = run(history, "month,modality")

    assert [(r.group["period_start"], r.group["modality"]) for r in rows] == sorted(groups)
    for row in rows:
        key = (row.group["period_start"], row.group["modality"])
        assert_figures(row.metrics, expected_figures(groups[key]))


def test_summary_without_group_keys_is_one_row_over_every_counted_session(
    history: KnownHistory,
) -> None:
    (row,) = run(history, None)
    assert row.group == {}
    assert_figures(row.metrics, expected_figures(counted()))


@pytest.mark.parametrize("unit", ["day", "week", "month"])
def test_time_buckets_are_utc_days_monday_weeks_and_months(
    history: KnownHistory, unit: str
) -> None:
    expected: dict[date, int] = defaultdict(int)
    for spec in counted():
        expected[period(spec, unit)] += 1
    rows = run(history, unit)
    assert {r.group["period_start"]: r.metrics["session_count"] for r in rows} == expected


@pytest.mark.parametrize(
    ("key", "column", "attribute", "refs"),
    [
        ("modality", "modality", "modality", None),
        ("body_site", "body_site", "body_site", None),
        ("program", "program_id", "program", "programs"),
        ("device", "device_id", "device", "devices"),
        ("practitioner", "practitioner_id", "practitioner", "practitioners"),
        ("client", "client_id", "client", "clients"),
    ],
)
def test_each_category_key_groups_counts_and_charge(
    history: KnownHistory, key: str, column: str, attribute: str, refs: str | None
) -> None:
    expected: dict[Any, list[Spec]] = defaultdict(list)
    for spec in counted():
        value = getattr(spec, attribute)
        if refs is not None and value is not None:
            value = getattr(history, refs)[value]
        expected[value].append(spec)

    rows = run(history, key)

    assert set(rows[0].group) == {column}
    assert {r.group[column] for r in rows} == set(expected)
    for row in rows:
        assert_figures(row.metrics, expected_figures(expected[row.group[column]]))
    if None in expected:
        assert rows[-1].group[column] is None, "groups without a value sort last on both engines"


def test_filters_narrow_the_summary(history: KnownHistory) -> None:
    specs = [s for s in counted() if s.modality == "ems" and s.started_at.month == 2]
    (row,) = run(history, None, modality=["ems"], since="2026-02-01", until="2026-03-01")
    assert_figures(row.metrics, expected_figures(specs))


def test_removed_sessions_count_only_when_asked_for(history: KnownHistory) -> None:
    (row,) = run(history, None, status=[REMOVED])
    removed = [s for s in HISTORY if s.status == REMOVED]
    assert_figures(row.metrics, expected_figures(removed))


def test_an_empty_selection_gives_zero_counts_and_no_sums(history: KnownHistory) -> None:
    (row,) = run(history, None, since="2030-01-01")
    assert row.metrics["session_count"] == 0
    assert row.metrics["adverse_event_count"] == 0
    assert row.metrics["charge_total_uc"] is None
    assert run(history, "month", since="2030-01-01") == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("month,colour", "unsupported group key 'colour'"),
        ("month,day", "choose one time bucket"),
        ("client,client", "given twice"),
    ],
)
def test_unusable_group_keys_are_refused_naming_group_by(raw: str, reason: str) -> None:
    with pytest.raises(AnalyticsInputError, match=reason) as caught:
        parse_group_by(raw)
    assert caught.value.field == "group_by"


def test_group_keys_accept_commas_and_repeats() -> None:
    assert parse_group_by(["month, modality", "client"]) == (
        GroupKey.MONTH,
        GroupKey.MODALITY,
        GroupKey.CLIENT,
    )


def _new_version(history: KnownHistory, index: int, **changes: Any) -> None:
    """Write a correction (or a removal) of HISTORY[index] the way the store records one."""
    from sessionlog.store import repository
    from sessionlog.store.models import TreatmentSession

    with session_scope(history.engine) as db:
        original = db.get(TreatmentSession, history.ids[index])
        assert original is not None
        values = original.model_dump(exclude={"id", "created_at"})
        repository.add(db, TreatmentSession(**{**values, "supersedes_id": original.id, **changes}))


def test_only_the_latest_version_of_a_corrected_session_counts(history: KnownHistory) -> None:
    _new_version(history, 7, dose_total_charge_uc=1500.0)  # 2026-02-28, 1000 µC before
    (row,) = run(history, None)
    expected = expected_figures(counted())
    assert row.metrics["session_count"] == expected["session_count"]
    assert row.metrics["charge_total_uc"] == pytest.approx(expected["charge_total_uc"] + 500.0)


def test_a_removed_session_no_longer_counts(history: KnownHistory) -> None:
    _new_version(history, 0, status=REMOVED)
    (row,) = run(history, None)
    remaining = counted()[1:]
    assert_figures(row.metrics, expected_figures(remaining))
