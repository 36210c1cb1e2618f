"""Benchmark: the dose summary grouped by month and modality, against the same query written by hand.

Seeds the database named by ``--url`` up to ``--sessions`` sessions when it holds fewer, then times
``sessionlog.analytics.aggregates.summarise`` (refresh check, statement building, compilation,
execution and result rows) against the hand-written SQL of the same query over ``session`` run
through the raw DB-API cursor on the same engine, alternating the two so both see the same cache
state, and checks that both give the same groups and figures. The summary is answered from the day
rollup, so the one-off rebuild of the rollup after seeding (or after ``--rebuild`` marks every day)
is timed and printed on its own, apart from the steady state. Prints absolute times and the ratio.

    python -m benchmarks.analytics_summary --url sqlite:///bench.sqlite3 --sessions 1000000
    python -m benchmarks.analytics_summary --url postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlmodel import col

from sessionlog.analytics.aggregates import (
    METRICS,
    SummaryRow,
    key_columns,
    parse_group_by,
    summarise,
)
from sessionlog.analytics.day_summary import pending_keys, refresh_day_summary
from sessionlog.analytics.filters import SessionFilter
from sessionlog.analytics.seeding import seed_history
from sessionlog.store import migrations
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import Client, Device, TreatmentSession, User
from sessionlog.store.rollup_triggers import mark_every_key_dirty

TARGET_MS = 200.0
TARGET_RATIO = 1.2

_FIGURES = """
    count(*) AS session_count,
    sum({duration}) AS duration_total_s,
    avg({duration}) AS duration_mean_s,
    sum(dose_total_charge_uc) AS charge_total_uc,
    avg(dose_total_charge_uc) AS charge_mean_uc,
    avg(dose_max_current_density_ma_cm2) AS current_density_mean_ma_cm2,
    max(dose_max_current_density_ma_cm2) AS current_density_max_ma_cm2,
    sum(dose_on_time_s) AS on_time_total_s,
    coalesce(sum(adverse.adverse_events), 0) AS adverse_event_count,
    coalesce(sum(CASE WHEN status = 'aborted' THEN 1 ELSE 0 END), 0) AS aborted_count,
    coalesce(sum(CASE WHEN status = 'interrupted' THEN 1 ELSE 0 END), 0) AS interrupted_count,
    coalesce(sum(CASE WHEN out_of_limits THEN 1 ELSE 0 END), 0) AS out_of_limits_count"""

_HAND_WRITTEN = """
SELECT {month} AS period_start, modality, {figures}
FROM session
LEFT OUTER JOIN (
  SELECT session_id, count(*) AS adverse_events FROM session_event
  WHERE kind = 'adverse_event' GROUP BY session_id
) AS adverse ON adverse.session_id = session.id
WHERE {latest} AND status != 'entered_in_error'
GROUP BY {month}, modality
ORDER BY {month} NULLS LAST, modality NULLS LAST
"""

_LATEST = "NOT EXISTS (SELECT 1 FROM session AS newer WHERE newer.supersedes_id = session.id)"

HAND_WRITTEN_SQL = {
    "sqlite": _HAND_WRITTEN.format(
        latest=_LATEST,
        month="substr(started_at, 1, 7) || '-01'",
        figures=_FIGURES.format(
            duration="round((julianday(ended_at) - julianday(started_at)) * 86400.0, 3)"
        ),
    ),
    "postgresql": _HAND_WRITTEN.format(
        latest=_LATEST,
        month="CAST(date_trunc('month', timezone('UTC', started_at)) AS DATE)",
        figures=_FIGURES.format(
            duration="CAST(EXTRACT(epoch FROM ended_at - started_at) AS FLOAT)"
        ),
    ),
}


def session_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(TreatmentSession)).scalar_one()
        )


def timed(run: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    rows = run()
    return (time.perf_counter() - start) * 1000, rows


def assert_same_answer(
    ours: list[SummaryRow], hand: Sequence[Sequence[Any]], names: list[str]
) -> None:
    """The rollup's rows equal the hand-written SQL's: same groups, counts, and sums to 1e-9."""
    assert len(ours) == len(hand), (len(ours), len(hand))
    for row, raw in zip(ours, hand, strict=True):
        group = [
            date.fromisoformat(v) if isinstance(v, str) and n == "period_start" else v
            for n, v in zip(names, raw, strict=False)
        ]
        assert list(row.group.values()) == group, (row.group, group)
        for metric, value in zip(METRICS, raw[len(names) :], strict=True):
            mine = row.metrics[metric]
            if value is None or metric.endswith("_count"):
                assert mine == value, (row.group, metric, mine, value)
            else:
                assert mine is not None, (row.group, metric)
                assert math.isclose(mine, value, rel_tol=1e-9), (row.group, metric, mine, value)


def record_one_session(engine: Engine, started_at: datetime) -> None:
    """A session as a station records one: it marks its day, which the next summary rebuilds."""
    with session_scope(engine) as db:
        client = db.execute(select(col(Client.id)).limit(1)).scalar_one()
        user = db.execute(select(col(User.id)).limit(1)).scalar_one()
        device = db.execute(select(col(Device.id)).limit(1)).scalar_one()
        db.add(
            TreatmentSession(
                client_id=client,
                practitioner_id=user,
                device_id=device,
                mode="recorded",
                status="completed",
                modality="ems",
                body_site="calf",
                electrode_area_cm2=50.0,
                planned_duration_s=1200,
                started_at=started_at,
                ended_at=started_at + timedelta(minutes=20),
                dose_total_charge_uc=1000.0,
                dose_on_time_s=600.0,
                dose_max_current_density_ma_cm2=0.5,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default="sqlite:///benchmark-analytics.sqlite3")
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--revision", default="head", help="Schema revision to migrate to first.")
    parser.add_argument(
        "--sqlite-cache-mib",
        type=int,
        default=0,
        help="Set PRAGMA cache_size on every SQLite connection (both sides); 0 keeps the default.",
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="Mark every day dirty first, to time the one-off rebuild of the rollup again.",
    )
    parser.add_argument(
        "--write-cycles",
        type=int,
        default=0,
        help="Also time N summaries that each follow one newly recorded session (adds N sessions).",
    )
    args = parser.parse_args()

    engine = make_engine(args.url)
    dialect = engine.dialect.name
    if dialect == "sqlite" and args.sqlite_cache_mib:
        kib = args.sqlite_cache_mib * 1024

        @event.listens_for(engine, "connect")
        def _cache(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA cache_size=-{kib}")

    migrations.upgrade(engine, args.revision)
    present = session_count(engine)
    if present < args.sessions:
        start = time.perf_counter()
        seed_history(engine, sessions=args.sessions - present)
        print(f"seeded {args.sessions - present} sessions in {time.perf_counter() - start:.1f} s")
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE session")
            connection.exec_driver_sql("VACUUM ANALYZE session_event")
    elif dialect == "sqlite":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    if args.rebuild:
        with engine.begin() as connection:
            mark_every_key_dirty(connection)
    total = session_count(engine)
    keys = parse_group_by("month,modality")
    everything = SessionFilter()

    # The one-off cost: rebuilding every day the seeding (or the migration) marked.
    with engine.connect() as connection:
        pending = pending_keys(connection)
    start = time.perf_counter()
    report = refresh_day_summary(engine)
    refresh_ms = (time.perf_counter() - start) * 1000

    def ours() -> int:
        with session_scope(engine) as db:
            return len(summarise(db, everything, keys))

    def hand_written_rows() -> list[Any]:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(HAND_WRITTEN_SQL[dialect])
            rows = list(cursor.fetchall())
            cursor.close()
            connection.commit()
            return rows
        finally:
            connection.close()

    def hand_written() -> int:
        return len(hand_written_rows())

    ours()
    hand_written()  # warm both: caches, pool, statement compilation
    ours_ms: list[float] = []
    raw_ms: list[float] = []
    for _ in range(args.repeat):
        ms, ours_rows = timed(ours)
        ours_ms.append(ms)
        ms, raw_rows = timed(hand_written)
        raw_ms.append(ms)
    assert ours_rows == raw_rows, (ours_rows, raw_rows)
    with session_scope(engine) as db:
        answer = summarise(db, everything, keys)
    assert_same_answer(answer, hand_written_rows(), key_columns(keys))

    after_write_ms: list[float] = []
    for cycle in range(args.write_cycles):
        record_one_session(engine, datetime.now(UTC) - timedelta(days=cycle % 30))
        ms, _ = timed(ours)
        after_write_ms.append(ms)

    ours_median = statistics.median(ours_ms)
    raw_median = statistics.median(raw_ms)
    ratio = ours_median / raw_median
    cache = f", cache_size {args.sqlite_cache_mib} MiB" if args.sqlite_cache_mib else ""
    print(f"database: {dialect}{cache}, {total} sessions, {ours_rows} groups (month x modality)")
    print(
        f"one-off rollup rebuild: {pending} days marked, {report.keys} rebuilt in "
        f"{report.batches} transactions, {refresh_ms:8.1f} ms"
    )
    print(f"summarise():      median {ours_median:8.1f} ms  best {min(ours_ms):8.1f} ms (steady)")
    print(f"hand-written SQL: median {raw_median:8.1f} ms  best {min(raw_ms):8.1f} ms")
    if after_write_ms:
        print(
            f"summarise() after one new session: median {statistics.median(after_write_ms):8.1f} ms"
            f"  worst {max(after_write_ms):8.1f} ms ({len(after_write_ms)} cycles)"
        )
    print("answers agree: same groups, counts equal, sums within 1e-9 relative")
    print(
        f"ratio {ratio:.3f} (target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'}); "
        f"absolute target < {TARGET_MS:.0f} ms: {'met' if ours_median < TARGET_MS else 'NOT met'}"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
