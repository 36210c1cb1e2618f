"""Benchmark: the dose summary grouped by month and modality, against the same query written by hand.

Seeds the database named by ``--url`` up to ``--sessions`` sessions when it holds fewer, then times
``sessionlog.analytics.aggregates.summarise`` (statement building, compilation, execution and result
rows) against the hand-written SQL of the same query run through the raw DB-API cursor on the same
engine, alternating the two so both see the same cache state. Prints absolute times and the ratio.

    python -m benchmarks.analytics_summary --url sqlite:///bench.sqlite3 --sessions 1000000
    python -m benchmarks.analytics_summary --url postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event, func, select

from sessionlog.analytics.aggregates import parse_group_by, summarise
from sessionlog.analytics.filters import SessionFilter
from sessionlog.analytics.seeding import seed_history
from sessionlog.store import migrations
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import TreatmentSession

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
    total = session_count(engine)
    keys = parse_group_by("month,modality")
    everything = SessionFilter()

    def ours() -> int:
        with session_scope(engine) as db:
            return len(summarise(db, everything, keys))

    def hand_written() -> int:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(HAND_WRITTEN_SQL[dialect])
            rows = len(cursor.fetchall())
            cursor.close()
            connection.commit()
            return rows
        finally:
            connection.close()

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
    ours_median = statistics.median(ours_ms)
    raw_median = statistics.median(raw_ms)
    ratio = ours_median / raw_median
    cache = f", cache_size {args.sqlite_cache_mib} MiB" if args.sqlite_cache_mib else ""
    print(f"database: {dialect}{cache}, {total} sessions, {ours_rows} groups (month x modality)")
    print(f"summarise():      median {ours_median:8.1f} ms  best {min(ours_ms):8.1f} ms")
    print(f"hand-written SQL: median {raw_median:8.1f} ms  best {min(raw_ms):8.1f} ms")
    print(
        f"ratio {ratio:.3f} (target <= {TARGET_RATIO}); absolute target < {TARGET_MS:.0f} ms: "
        f"{'met' if ours_median < TARGET_MS else 'NOT met'}"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
