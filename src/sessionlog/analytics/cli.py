"""The ``export`` and ``seed`` commands of the ``sessionlog`` command line.

Both read the same settings as the service, so they act on the database ``sessionlog serve`` opens,
and both show a progress bar, because an export or a seed of a million sessions takes a while. The
functions are plain typer commands; ``sessionlog.cli`` registers them on its application.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sessionlog.analytics import exports
from sessionlog.analytics.filters import AnalyticsInputError, SessionFilter
from sessionlog.analytics.seeding import seed_history
from sessionlog.cli_errors import fail, load_settings, new_file
from sessionlog.store import migrations
from sessionlog.store.database import make_engine


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


def _filter_or_fail(**values: object) -> SessionFilter:
    given = {name: value for name, value in values.items() if value not in (None, [], ())}
    try:
        return SessionFilter.model_validate(given)
    except ValidationError as error:
        reasons = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in error.errors()
        )
        raise fail(reasons) from error


def export(
    export_format: Annotated[
        str, typer.Option("--format", "-f", help="csv, parquet or fhir (a FHIR R4B Bundle).")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="File to write.", dir_okay=False, callback=new_file),
    ],
    since: Annotated[
        str | None, typer.Option(help="Sessions started at or after (ISO date or date-time, UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Sessions started before this.")] = None,
    modality: Annotated[list[str] | None, typer.Option(help="ems or microcurrent.")] = None,
    body_site: Annotated[list[str] | None, typer.Option(help="Electrode site.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Session status.")] = None,
    client_id: Annotated[list[int] | None, typer.Option(help="Client id.")] = None,
    practitioner_id: Annotated[list[int] | None, typer.Option(help="Practitioner id.")] = None,
    device_id: Annotated[list[int] | None, typer.Option(help="Device id.")] = None,
    driver: Annotated[list[str] | None, typer.Option(help="Device driver name.")] = None,
    program_id: Annotated[list[int] | None, typer.Option(help="Program id.")] = None,
    out_of_limits: Annotated[
        bool | None, typer.Option("--out-of-limits/--within-limits", help="Flagged or not.")
    ] = None,
    adverse_event: Annotated[
        bool | None,
        typer.Option("--adverse-event/--no-adverse-event", help="With or without adverse events."),
    ] = None,
) -> None:
    """Export session history to a CSV, Parquet or FHIR file, with the same filters as the API."""
    try:
        chosen = exports.parse_format(export_format)
    except AnalyticsInputError as error:
        raise fail(f"--format: {error.reason}") from error
    session_filter = _filter_or_fail(
        since=since,
        until=until,
        modality=modality,
        body_site=body_site,
        status=status,
        client_id=client_id,
        practitioner_id=practitioner_id,
        device_id=device_id,
        driver=driver,
        program_id=program_id,
        out_of_limits=out_of_limits,
        has_adverse_event=adverse_event,
    )
    settings = load_settings()
    engine = make_engine(settings.effective_database_url)
    try:
        migrations.ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
        total = exports.count_sessions(engine, session_filter)
        started = time.perf_counter()
        with _progress_bar() as bar:
            task = bar.add_task(f"export {chosen.value}", total=total)
            exports.write_export(
                engine, chosen, session_filter, out, lambda n: bar.advance(task, n)
            )
    except migrations.DatabaseNotMigratedError as error:
        raise fail(str(error)) from error
    finally:
        engine.dispose()
    elapsed = time.perf_counter() - started
    typer.echo(f"wrote {total} sessions to {out} ({chosen.value}) in {elapsed:.1f} s")


def seed(
    sessions: Annotated[int, typer.Option("--sessions", "-n", min=1, help="Sessions to write.")],
    days: Annotated[int, typer.Option(min=1, help="Days of history before --end.")] = 730,
    end: Annotated[
        datetime | None, typer.Option(help="Day the history ends (UTC); default: today.")
    ] = None,
    random_seed: Annotated[int, typer.Option("--seed", help="Same seed, same history.")] = 1,
) -> None:
    """Write realistic synthetic session history (both modalities, many clients and sites)."""
    settings = load_settings()
    engine = make_engine(settings.effective_database_url)
    try:
        migrations.ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
        started = time.perf_counter()
        with _progress_bar() as bar:
            task = bar.add_task("seed sessions", total=sessions)
            report = seed_history(
                engine,
                sessions=sessions,
                days=days,
                end=end.replace(tzinfo=end.tzinfo or UTC) if end else None,
                seed=random_seed,
                progress=lambda n: bar.advance(task, n),
            )
    except migrations.DatabaseNotMigratedError as error:
        raise fail(str(error)) from error
    finally:
        engine.dispose()
    elapsed = time.perf_counter() - started
    typer.echo(
        f"seeded {report.sessions} sessions ({report.channels} channels, "
        f"{report.adverse_events} adverse events) for {report.clients} clients, "
        f"{report.practitioners} practitioners, {report.devices} devices, "
        f"{report.programs} programs, {report.first_started_at:%Y-%m-%d} to "
        f"{report.last_started_at:%Y-%m-%d}, in {elapsed:.1f} s"
    )
