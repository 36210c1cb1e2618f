"""The ``seed`` and ``export`` commands, on the configured database."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from sessionlog.analytics.cli import export, seed
from sessionlog.store.database import make_engine
from sessionlog.store.models import SessionChannel, TreatmentSession

runner = CliRunner()


def command_line() -> typer.Typer:
    app = typer.Typer()
    app.command()(export)
    app.command()(seed)
    return app


def test_seed_then_export_a_small_history(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", database_url)
    app = command_line()

    seeded = runner.invoke(app, ["seed", "--sessions", "300", "--days", "60", "--seed", "7"])
    assert seeded.exit_code == 0, seeded.output
    assert "seeded 300 sessions" in seeded.output

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            sessions = connection.execute(
                select(TreatmentSession.modality, func.count()).group_by(TreatmentSession.modality)
            ).all()
            removed = connection.execute(
                select(func.count()).where(TreatmentSession.status == "entered_in_error")
            ).scalar_one()
            channels = connection.execute(
                select(func.count()).select_from(SessionChannel)
            ).scalar_one()
    finally:
        engine.dispose()
    assert dict(sessions).keys() == {"ems", "microcurrent"}
    assert sum(n for _, n in sessions) == 300
    assert channels >= 300

    out = tmp_path / "history.csv"
    exported = runner.invoke(
        app, ["export", "--format", "csv", "--since", "2000-01-01", "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 300 - removed
    assert {row["modality"] for row in rows} == {"ems", "microcurrent"}


def test_export_refuses_bad_format_and_inverted_range(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", database_url)
    app = command_line()
    out = tmp_path / "x"
    bad_format = runner.invoke(app, ["export", "--format", "xlsx", "--out", str(out)])
    assert bad_format.exit_code == 1
    assert "--format" in bad_format.output
    inverted = runner.invoke(
        app,
        ["export", "-f", "csv", "--since", "2026-02-01", "--until", "2026-01-01", "-o", str(out)],
    )
    assert inverted.exit_code == 1
    assert "--until" in inverted.output
    assert not out.exists()
