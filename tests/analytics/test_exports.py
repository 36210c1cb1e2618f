"""Exports: CSV with units in the column names, streamed; Parquet round trip; a valid FHIR R4B Bundle."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle

from sessionlog.analytics import exports
from sessionlog.analytics.filters import SessionFilter
from tests.analytics.conftest import HISTORY, REMOVED, KnownHistory

EXPORT = "/api/v1/analytics/export"
COUNTED = [s for s in HISTORY if s.status != REMOVED]


def test_csv_names_every_unit_and_matches_the_history(
    analytics_api: TestClient, history: KnownHistory
) -> None:
    response = analytics_api.get(EXPORT, params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    header = list(rows[0])
    for column in (
        "duration_s",
        "electrode_area_cm2",
        "dose_total_charge_uc",
        "dose_on_time_s",
        "dose_max_current_density_ma_cm2",
        "dose_max_power_density_w_cm2",
    ):
        assert column in header
    assert [int(r["session_id"]) for r in rows] == history.ids[: len(COUNTED)]
    for row, spec in zip(rows, COUNTED, strict=True):
        assert row["modality"] == spec.modality
        assert row["dose_total_charge_uc"] == (
            "" if spec.charge_uc is None else str(spec.charge_uc)
        )
        expected_s = "" if spec.minutes is None else spec.minutes * 60
        assert (float(row["duration_s"]) if row["duration_s"] else "") == expected_s
        assert int(row["adverse_event_count"]) == spec.adverse_events
        assert row["started_at"] == spec.started_at.isoformat().replace("+00:00", "Z")


def test_csv_streams_in_batches_and_honours_filters(
    history: KnownHistory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "BATCH_ROWS", 2)
    chunks = list(exports.iter_csv(history.engine, SessionFilter(modality=["ems"])))
    ems = [s for s in COUNTED if s.modality == "ems"]
    assert len(chunks) == 1 + (len(ems) + 1) // 2  # the header, then one chunk per batch
    assert sum(chunk.count("\n") for chunk in chunks) == 1 + len(ems)


def test_parquet_round_trips_through_pyarrow(
    analytics_api: TestClient, history: KnownHistory, tmp_path: Path
) -> None:
    response = analytics_api.get(EXPORT, params={"format": "parquet", "since": "2026-02-01"})
    assert response.status_code == 200, response.text
    path = tmp_path / "sessions.parquet"
    path.write_bytes(response.content)
    table = pq.read_table(path)
    assert table.column_names == [c.name for c in exports.EXPORT_COLUMNS]
    later = [s for s in COUNTED if s.started_at.month >= 2]
    assert table.num_rows == len(later)
    data = table.to_pydict()
    assert data["dose_total_charge_uc"] == [s.charge_uc for s in later]
    assert data["started_at"] == [s.started_at for s in later]
    assert data["out_of_limits"] == [s.out_of_limits for s in later]
    assert str(table.schema.field("started_at").type) == "timestamp[us, tz=UTC]"


def test_fhir_bundle_is_valid_r4b_and_references_resolve(
    analytics_api: TestClient, history: KnownHistory
) -> None:
    response = analytics_api.get(EXPORT, params={"format": "fhir"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate_json(response.content)
    assert bundle.type == "collection"
    entries = bundle.entry or []
    by_type: dict[str, list[object]] = {}
    for entry in entries:
        by_type.setdefault(entry.resource.get_resource_type(), []).append(entry.resource)
    assert len(by_type["Procedure"]) == len(COUNTED)
    assert len(by_type["Device"]) == len({s.device for s in COUNTED})
    assert len(by_type["Patient"]) == len({s.client for s in COUNTED})
    full_urls = {entry.fullUrl for entry in entries}
    raw = json.loads(response.content)
    references = [value for entry in raw["entry"] for value in _references(entry["resource"])]
    assert references
    assert set(references) <= full_urls

    procedures = {p.id: p for p in by_type["Procedure"]}  # type: ignore[attr-defined]
    first = procedures[f"session-{history.ids[0]}"]
    assert first.status == "completed"
    assert [c.text for c in first.complication] == ["redness 0 (severity: mild)"]
    assert first.bodySite[0].coding[0].code == "thigh_anterior"
    aborted = procedures[f"session-{history.ids[1]}"]
    assert aborted.status == "stopped"
    dose = next(o for o in by_type["Observation"] if o.id == f"session-{history.ids[0]}-dose")  # type: ignore[attr-defined]
    charge = next(c for c in dose.component if c.code.coding[0].code == "total-charge")
    assert float(charge.valueQuantity.value) == HISTORY[0].charge_uc
    assert charge.valueQuantity.code == "uC"


def _references(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for value in node.values() for r in _references(value)]
    if isinstance(node, list):
        return [r for value in node for r in _references(value)]
    return []


def test_unsupported_format_is_refused_before_anything_streams(
    analytics_api: TestClient,
) -> None:
    response = analytics_api.get(EXPORT, params={"format": "xml"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "format"
