"""Session history out to analysts' tools: streamed CSV, Parquet, and an HL7 FHIR R4 (R4B) Bundle.

Every format reads one streamed query (server-side cursor on PostgreSQL, a lazy cursor on SQLite) in
batches, so an export of a million sessions holds one batch in memory, never the result. CSV and
Parquet carry one row per session with the unit in every column name that has one. The FHIR Bundle is
written entry by entry; each resource (Patient, Practitioner, Device, Procedure, Observation) is built
through the ``fhir.resources`` R4B models, so an invalid resource fails the export instead of reaching
a receiving system.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from fhir.resources.R4B.bundle import BundleEntry
from fhir.resources.R4B.device import Device as FhirDevice
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.procedure import Procedure
from sqlalchemy import Connection, Engine, Select, func, select
from sqlmodel import col

from sessionlog.analytics.aggregates import duration_s
from sessionlog.analytics.filters import (
    ADVERSE_EVENT_KIND,
    AnalyticsInputError,
    SessionFilter,
    session_conditions,
)
from sessionlog.analytics.session_figures import adverse_events_of_chain
from sessionlog.store.models import (
    Client,
    Device,
    SessionChain,
    SessionChannel,
    SessionEvent,
    TreatmentSession,
    User,
)

BATCH_ROWS = 1000
"""Rows fetched and written per step: bounds the memory an export holds, whatever its size."""

Progress = Callable[[int], None]
"""Called with the number of sessions written since the previous call."""


class ExportFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    FHIR = "fhir"


MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
    ExportFormat.FHIR: "application/fhir+json",
}
FILE_SUFFIXES = {
    ExportFormat.CSV: "csv",
    ExportFormat.PARQUET: "parquet",
    ExportFormat.FHIR: "json",
}


def parse_format(raw: str) -> ExportFormat:
    try:
        return ExportFormat(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(f.value for f in ExportFormat)
        raise AnalyticsInputError(
            "format", f"unsupported export format {raw!r}; use one of {allowed}"
        ) from None


@dataclass(frozen=True)
class ExportColumn:
    name: str
    kind: str
    """One of ``int``, ``float``, ``str``, ``bool``, ``timestamp``: drives CSV text and Parquet types."""


EXPORT_COLUMNS: tuple[ExportColumn, ...] = (
    ExportColumn("session_id", "int"),
    ExportColumn("started_at", "timestamp"),
    ExportColumn("ended_at", "timestamp"),
    ExportColumn("duration_s", "float"),
    ExportColumn("planned_duration_s", "int"),
    ExportColumn("status", "str"),
    ExportColumn("mode", "str"),
    ExportColumn("end_reason", "str"),
    ExportColumn("modality", "str"),
    ExportColumn("body_site", "str"),
    ExportColumn("side", "str"),
    ExportColumn("electrode_area_cm2", "float"),
    ExportColumn("client_id", "int"),
    ExportColumn("client_code", "str"),
    ExportColumn("practitioner_id", "int"),
    ExportColumn("practitioner_username", "str"),
    ExportColumn("device_id", "int"),
    ExportColumn("device_driver", "str"),
    ExportColumn("device_serial_number", "str"),
    ExportColumn("program_id", "int"),
    ExportColumn("program_name", "str"),
    ExportColumn("out_of_limits", "bool"),
    ExportColumn("dose_total_charge_uc", "float"),
    ExportColumn("dose_on_time_s", "float"),
    ExportColumn("dose_max_current_density_ma_cm2", "float"),
    ExportColumn("dose_max_power_density_w_cm2", "float"),
    ExportColumn("adverse_event_count", "int"),
)
"""The per-session table of the CSV and Parquet exports; a unit suffix on every quantity."""


def export_statement(session_filter: SessionFilter, dialect: str) -> Select[*tuple[Any, ...]]:
    """One row per matching session, in id order, with the names analysts need beside the ids.

    A session's adverse events are its chain's: those recorded on earlier versions count too.
    """
    s = TreatmentSession
    adverse_count = adverse_events_of_chain()
    statement: Select[*tuple[Any, ...]] = (
        select(
            col(s.id).label("session_id"),
            col(s.started_at),
            col(s.ended_at),
            duration_s(dialect).label("duration_s"),
            col(s.planned_duration_s),
            col(s.status),
            col(s.mode),
            col(s.end_reason),
            col(s.modality),
            col(s.body_site),
            col(s.side),
            col(s.electrode_area_cm2),
            col(s.client_id),
            col(Client.code).label("client_code"),
            col(s.practitioner_id),
            col(User.username).label("practitioner_username"),
            col(User.display_name).label("practitioner_name"),
            col(s.device_id),
            col(Device.driver).label("device_driver"),
            col(Device.serial_number).label("device_serial_number"),
            col(Device.model).label("device_model"),
            col(Device.firmware_version).label("device_firmware_version"),
            col(s.program_id),
            col(s.program_name),
            col(s.out_of_limits),
            col(s.dose_total_charge_uc),
            col(s.dose_on_time_s),
            col(s.dose_max_current_density_ma_cm2),
            col(s.dose_max_power_density_w_cm2),
            col(s.notes),
            col(s.outcome),
            adverse_count.label("adverse_event_count"),
        )
        .join(Client, col(Client.id) == col(s.client_id))
        .join(User, col(User.id) == col(s.practitioner_id))
        .join(Device, col(Device.id) == col(s.device_id))
        .where(*session_conditions(session_filter))
        .order_by(col(s.id))
    )
    return statement


def count_sessions(engine: Engine, session_filter: SessionFilter) -> int:
    """How many sessions an export will write (for a progress bar's total)."""
    statement = select(func.count()).select_from(TreatmentSession)
    statement = statement.where(*session_conditions(session_filter))
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


@dataclass(frozen=True)
class _Batch:
    rows: list[dict[str, Any]]
    channels: dict[int, list[dict[str, Any]]]
    adverse: dict[int, list[dict[str, Any]]]


def _session_batches(
    engine: Engine, session_filter: SessionFilter, *, details: bool = False
) -> Iterator[_Batch]:
    """The matching sessions in id order, ``BATCH_ROWS`` at a time, each batch read in its own short
    transaction (keyset on id), with the connection released before the batch is handed on.

    No transaction stays open while a slow client reads the stream: on SQLite a transaction holds
    the database lock, and a long one would stall session recording for the length of the export.
    """
    statement = export_statement(session_filter, engine.dialect.name)
    last_id = 0
    while True:
        with engine.connect() as connection:
            page = statement.where(col(TreatmentSession.id) > last_id).limit(BATCH_ROWS)
            rows = [dict(row) for row in connection.execute(page).mappings()]
            channels, adverse = (
                _details(connection, [row["session_id"] for row in rows])
                if details and rows
                else ({}, {})
            )
        if not rows:
            return
        yield _Batch(rows, channels, adverse)
        last_id = rows[-1]["session_id"]


def _csv_text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def iter_csv(
    engine: Engine, session_filter: SessionFilter, progress: Progress | None = None
) -> Iterator[str]:
    """The CSV export as text chunks (header first), one chunk per batch of sessions."""
    names = [c.name for c in EXPORT_COLUMNS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    yield buffer.getvalue()
    for batch in _session_batches(engine, session_filter):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([[_csv_text(row[n]) for n in names] for row in batch.rows])
        yield buffer.getvalue()
        if progress:
            progress(len(batch.rows))


def write_csv(
    engine: Engine, session_filter: SessionFilter, out: Path, progress: Progress | None = None
) -> None:
    with out.open("w", encoding="utf-8", newline="") as handle:
        for chunk in iter_csv(engine, session_filter, progress):
            handle.write(chunk)


def _arrow_schema() -> Any:
    import pyarrow as pa  # type: ignore[import-untyped]

    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(c.name, types[c.kind]) for c in EXPORT_COLUMNS])


def write_parquet(
    engine: Engine,
    session_filter: SessionFilter,
    sink: Path | BinaryIO,
    progress: Progress | None = None,
) -> None:
    """Write the Parquet export, one row group per batch, so memory stays at one batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    schema = _arrow_schema()
    names = [c.name for c in EXPORT_COLUMNS]
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for batch in _session_batches(engine, session_filter):
            columns = {name: [row[name] for row in batch.rows] for name in names}
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            if progress:
                progress(len(batch.rows))


# FHIR ---------------------------------------------------------------------------------------------

FHIR_SYSTEM = "urn:sessionlog"
"""Prefix of the code systems and identifiers sessionlog defines (modality, body site, dose figures)."""
UCUM = "http://unitsofmeasure.org"
_NAMESPACE = uuid.UUID("8f6f0a3e-4a55-4b6a-9d7e-5f3d2b1c0a99")

PROCEDURE_STATUS = {
    "planned": "preparation",
    "running": "in-progress",
    "paused": "on-hold",
    "completed": "completed",
    "stopped": "stopped",
    "aborted": "stopped",
    "interrupted": "stopped",
    "entered_in_error": "entered-in-error",
}
"""Session status to FHIR Procedure.status; aborted and interrupted also carry a statusReason."""

_DOSE_COMPONENTS = (
    ("dose_total_charge_uc", "total-charge", "Total delivered charge", "uC"),
    ("dose_on_time_s", "on-time", "Stimulation on-time", "s"),
    (
        "dose_max_current_density_ma_cm2",
        "max-current-density",
        "Maximum rms current density",
        "mA/cm2",
    ),
    (
        "dose_max_power_density_w_cm2",
        "max-power-density",
        "Maximum power density at 500 ohm",
        "W/cm2",
    ),
)
_CHANNEL_COMPONENTS = (
    ("amplitude_ua", "amplitude", "Peak amplitude", "uA"),
    ("pulse_width_us", "pulse-width", "Pulse (phase) width", "us"),
    ("frequency_hz", "frequency", "Pulse frequency", "Hz"),
)


def _full_url(kind: str, resource_id: str) -> str:
    """A stable ``urn:uuid`` per resource, so references resolve inside the Bundle on every export."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{kind}/{resource_id}')}"


def _ref(kind: str, resource_id: str, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": _full_url(kind, resource_id), "type": kind}
    if display:
        ref["display"] = display
    return ref


def _concept(system: str, code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": f"{FHIR_SYSTEM}:{system}", "code": code}], "text": text}


def _quantity(value: float | int, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _period(row: dict[str, Any]) -> dict[str, Any] | None:
    period = {k: row[f"{k}ed_at"].isoformat() for k in ("start", "end") if row.get(f"{k}ed_at")}
    return period or None


def _entry(kind: str, resource: Any) -> str:
    """Validate one resource inside its Bundle entry and return the entry's JSON."""
    entry = BundleEntry.model_validate(
        {"fullUrl": _full_url(kind, str(resource.id)), "resource": resource}
    )
    return str(entry.model_dump_json(exclude_none=True))


def _patient(row: dict[str, Any]) -> Any:
    return Patient.model_validate(
        {
            "id": f"client-{row['client_id']}",
            "identifier": [{"system": f"{FHIR_SYSTEM}:client-code", "value": row["client_code"]}],
        }
    )


def _practitioner(row: dict[str, Any]) -> Any:
    return Practitioner.model_validate(
        {
            "id": f"practitioner-{row['practitioner_id']}",
            "identifier": [
                {"system": f"{FHIR_SYSTEM}:username", "value": row["practitioner_username"]}
            ],
            "name": [{"text": row["practitioner_name"]}],
        }
    )


def _device(row: dict[str, Any]) -> Any:
    device: dict[str, Any] = {
        "id": f"device-{row['device_id']}",
        "identifier": [
            {
                "system": f"{FHIR_SYSTEM}:driver:{row['device_driver']}",
                "value": row["device_serial_number"],
            }
        ],
        "serialNumber": row["device_serial_number"],
        "deviceName": [{"name": row["device_model"], "type": "model-name"}],
    }
    if row["device_firmware_version"]:
        device["version"] = [{"value": row["device_firmware_version"]}]
    return FhirDevice.model_validate(device)


def _procedure(row: dict[str, Any], adverse: Sequence[dict[str, Any]]) -> Any:
    sid = f"session-{row['session_id']}"
    site = row["body_site"].replace("_", " ")
    procedure: dict[str, Any] = {
        "id": sid,
        "identifier": [{"system": f"{FHIR_SYSTEM}:session", "value": str(row["session_id"])}],
        "status": PROCEDURE_STATUS[row["status"]],
        "category": _concept("modality", row["modality"], f"{row['modality']} stimulation"),
        "code": _concept(
            "procedure", f"{row['modality']}-session", f"Electrical stimulation ({row['modality']})"
        ),
        "subject": _ref("Patient", f"client-{row['client_id']}", row["client_code"]),
        "performer": [
            {
                "actor": _ref(
                    "Practitioner",
                    f"practitioner-{row['practitioner_id']}",
                    row["practitioner_name"],
                )
            }
        ],
        "bodySite": [
            _concept(
                "body-site", row["body_site"], f"{site} ({row['side']})" if row["side"] else site
            )
        ],
        "usedReference": [_ref("Device", f"device-{row['device_id']}", row["device_model"])],
    }
    if row["status"] in ("aborted", "interrupted"):
        procedure["statusReason"] = {"text": row["end_reason"] or f"session {row['status']}"}
    period = _period(row)
    if period:
        procedure["performedPeriod"] = period
    if row["notes"]:
        procedure["note"] = [{"text": row["notes"]}]
    if row["outcome"]:
        procedure["outcome"] = {"text": row["outcome"]}
    if adverse:
        procedure["complication"] = [
            {"text": f"{event['description']} (severity: {event['severity']})"} for event in adverse
        ]
    return Procedure.model_validate(procedure)


def _observation(
    row: dict[str, Any], suffix: str, code: dict[str, Any], components: list[dict[str, Any]]
) -> Any:
    sid = f"session-{row['session_id']}"
    observation: dict[str, Any] = {
        "id": f"{sid}-{suffix}",
        "status": "entered-in-error" if row["status"] == "entered_in_error" else "final",
        "code": code,
        "subject": _ref("Patient", f"client-{row['client_id']}"),
        "partOf": [_ref("Procedure", sid)],
        "device": _ref("Device", f"device-{row['device_id']}"),
        "component": components,
    }
    period = _period(row)
    if period:
        observation["effectivePeriod"] = period
    return Observation.model_validate(observation)


def _dose_observation(row: dict[str, Any]) -> Any | None:
    components = [
        {"code": _concept("dose", code, text), "valueQuantity": _quantity(row[column], unit)}
        for column, code, text, unit in _DOSE_COMPONENTS
        if row[column] is not None
    ]
    if not components:
        return None
    code = _concept("observation", "delivered-dose", "Delivered stimulation dose")
    return _observation(row, "dose", code, components)


def _channel_observation(row: dict[str, Any], channel: dict[str, Any]) -> Any:
    components = [
        {"code": _concept("channel", code, text), "valueQuantity": _quantity(channel[column], unit)}
        for column, code, text, unit in _CHANNEL_COMPONENTS
    ]
    components.append(
        {"code": _concept("channel", "waveform", "Waveform"), "valueString": channel["waveform"]}
    )
    components.append(
        {
            "code": _concept("channel", "phase-type", "Phase type"),
            "valueString": channel["phase_type"],
        }
    )
    code = _concept(
        "observation", "channel-parameters", f"Delivered parameters, channel {channel['channel']}"
    )
    return _observation(row, f"channel-{channel['channel']}", code, components)


def _chain_owners(connection: Connection, session_ids: list[int]) -> dict[int, int]:
    """For the latest versions ``session_ids``, every version of their chains -> the latest one.

    Two queries per batch: the roots of the batch's corrected sessions, then the later versions of
    those roots. A session never corrected is its own chain.
    """
    owner = {session_id: session_id for session_id in session_ids}
    roots: dict[int, int] = {
        session_id: root
        for session_id, root in connection.execute(
            select(col(SessionChain.session_id), col(SessionChain.root_id)).where(
                col(SessionChain.session_id).in_(session_ids)
            )
        )
    }
    if not roots:
        return owner
    latest_of_root = {root: session_id for session_id, root in roots.items()}
    owner.update(latest_of_root)
    for version, root in connection.execute(
        select(col(SessionChain.session_id), col(SessionChain.root_id)).where(
            col(SessionChain.root_id).in_(list(latest_of_root))
        )
    ):
        owner.setdefault(version, latest_of_root[root])
    return owner


def _details(
    connection: Connection, session_ids: list[int]
) -> tuple[dict[int, list[Any]], dict[int, list[Any]]]:
    """Channels and adverse events of one batch of sessions: a few queries per batch, not per
    session. Adverse events are those of each session's chain of versions, oldest first."""
    channels: dict[int, list[Any]] = {i: [] for i in session_ids}
    adverse: dict[int, list[Any]] = {i: [] for i in session_ids}
    owners = _chain_owners(connection, session_ids)
    channel_rows = connection.execute(
        select(SessionChannel)
        .where(col(SessionChannel.session_id).in_(session_ids))
        .order_by(col(SessionChannel.session_id), col(SessionChannel.channel))
    ).mappings()
    for channel in channel_rows:
        channels[channel["session_id"]].append(dict(channel))
    event_rows = connection.execute(
        select(col(SessionEvent.session_id), col(SessionEvent.payload))
        .where(
            col(SessionEvent.session_id).in_(list(owners)),
            col(SessionEvent.kind) == ADVERSE_EVENT_KIND,
        )
        .order_by(col(SessionEvent.id))
    )
    for session_id, payload in event_rows:
        adverse[owners[session_id]].append(
            {"description": payload.get("description", ""), "severity": payload.get("severity")}
        )
    return channels, adverse


def iter_fhir_bundle(
    engine: Engine, session_filter: SessionFilter, progress: Progress | None = None
) -> Iterator[str]:
    """The FHIR export: a ``collection`` Bundle written entry by entry.

    Each Patient, Practitioner and Device appears once, before the first Procedure that refers to it;
    each session gives a Procedure, an Observation of its dose summary and one per channel.
    """
    timestamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    yield json.dumps({"resourceType": "Bundle", "type": "collection", "timestamp": timestamp})[:-1]
    yield ', "entry": ['
    first = True
    seen: set[str] = set()
    for batch in _session_batches(engine, session_filter, details=True):
        channels, adverse = batch.channels, batch.adverse
        entries: list[str] = []
        for row in batch.rows:
            for kind, key, build in (
                ("Patient", f"client-{row['client_id']}", _patient),
                ("Practitioner", f"practitioner-{row['practitioner_id']}", _practitioner),
                ("Device", f"device-{row['device_id']}", _device),
            ):
                if f"{kind}/{key}" not in seen:
                    seen.add(f"{kind}/{key}")
                    entries.append(_entry(kind, build(row)))
            entries.append(_entry("Procedure", _procedure(row, adverse[row["session_id"]])))
            dose = _dose_observation(row)
            if dose is not None:
                entries.append(_entry("Observation", dose))
            for channel in channels[row["session_id"]]:
                entries.append(_entry("Observation", _channel_observation(row, channel)))
        if entries:
            yield ("" if first else ",") + ",".join(entries)
            first = False
        if progress:
            progress(len(batch.rows))
    yield "]}"


def write_fhir(
    engine: Engine, session_filter: SessionFilter, out: Path, progress: Progress | None = None
) -> None:
    with out.open("w", encoding="utf-8") as handle:
        for chunk in iter_fhir_bundle(engine, session_filter, progress):
            handle.write(chunk)


def write_export(
    engine: Engine,
    export_format: ExportFormat,
    session_filter: SessionFilter,
    out: Path,
    progress: Progress | None = None,
) -> None:
    """Write an export file in ``export_format``; the one entry point the command line uses."""
    if export_format is ExportFormat.CSV:
        write_csv(engine, session_filter, out, progress)
    elif export_format is ExportFormat.PARQUET:
        write_parquet(engine, session_filter, out, progress)
    else:
        write_fhir(engine, session_filter, out, progress)
