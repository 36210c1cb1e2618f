"""Analytics routes: grouped dose summaries and streamed exports of the session history.

The routes are thin: they read the shared session filter from the query string (refusing any query
parameter they do not know, so a misspelt filter is a 422 rather than a silently wider answer, and a
single-value one given twice: ``sessionlog.api.query``), and hand over to ``sessionlog.analytics``.
Exports stream from their own database connection, so the response starts at once and holds one
batch of rows in memory whatever the size of the export.
"""

# No `from __future__ import annotations` here: FastAPI reads the annotations at runtime.

import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from sessionlog.analytics import exports
from sessionlog.analytics.aggregates import METRICS, GroupKey, parse_group_by, summarise
from sessionlog.analytics.filters import (
    MAX_FILTER_VALUES,
    AnalyticsInputError,
    SessionFilter,
    SessionStatus,
)
from sessionlog.api.auth import AuditorDep, authorize
from sessionlog.api.deps import SessionDep, get_engine
from sessionlog.api.problems import PROBLEM_RESPONSES, FieldError, ProblemError
from sessionlog.api.query import StrictQuery, query_problem
from sessionlog.fields import MAX_DB_INT
from sessionlog.safety.plan import BodySite, Modality
from sessionlog.security.scopes import Scope

router = APIRouter(
    prefix="/analytics",
    tags=["analytics"],
    responses=PROBLEM_RESPONSES,
    dependencies=[Security(authorize, scopes=[Scope.ANALYTICS_READ])],
)

STREAM_CHUNK_BYTES = 64 * 1024

Ids = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_DB_INT)]] | None,
    Query(max_length=MAX_FILTER_VALUES),
]


def input_problem(error: AnalyticsInputError) -> ProblemError:
    return query_problem([FieldError(field=error.field, reason=error.reason, location="query")])


def session_filter(
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Sessions started at or after: ISO 8601 with a zone, or a date (UTC).",
            examples=["2026-01-01"],
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(max_length=64, description="Sessions started before this instant or date (UTC)."),
    ] = None,
    modality: Annotated[list[Modality] | None, Query(max_length=MAX_FILTER_VALUES)] = None,
    client_id: Ids = None,
    practitioner_id: Ids = None,
    device_id: Ids = None,
    driver: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]] | None,
        Query(max_length=MAX_FILTER_VALUES, description="Device driver name."),
    ] = None,
    program_id: Ids = None,
    body_site: Annotated[list[BodySite] | None, Query(max_length=MAX_FILTER_VALUES)] = None,
    status: Annotated[
        list[SessionStatus] | None,
        Query(
            max_length=MAX_FILTER_VALUES,
            description="Session status; without it, removed sessions (entered_in_error) are left out.",
        ),
    ] = None,
    out_of_limits: Annotated[
        bool | None, Query(description="Flagged sessions only (or none).")
    ] = None,
    has_adverse_event: Annotated[
        bool | None, Query(description="Sessions with (true) or without (false) adverse events.")
    ] = None,
) -> SessionFilter:
    """The shared session filter; repeat a parameter for several values (`modality=ems&modality=…`)."""
    values: dict[str, Any] = {
        "since": since,
        "until": until,
        "modality": modality,
        "client_id": client_id,
        "practitioner_id": practitioner_id,
        "device_id": device_id,
        "driver": driver,
        "program_id": program_id,
        "body_site": body_site,
        "status": status,
        "out_of_limits": out_of_limits,
        "has_adverse_event": has_adverse_event,
    }
    try:
        return SessionFilter.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as error:
        raise query_problem(
            FieldError(
                field=".".join(str(part) for part in e["loc"]) or "query",
                reason=str(e["msg"]).removeprefix("Value error, "),
                location="query",
            )
            for e in error.errors()
        ) from None


SessionFilterDep = Annotated[SessionFilter, Depends(session_filter)]


class SummaryRowPublic(BaseModel):
    """One group of sessions and its figures; every figure names its unit."""

    group: dict[str, str | int | date | None] = Field(
        examples=[{"period_start": "2026-11-01", "modality": "ems"}]
    )
    session_count: int
    duration_total_s: float | None
    duration_mean_s: float | None
    charge_total_uc: float | None
    charge_mean_uc: float | None
    current_density_mean_ma_cm2: float | None
    current_density_max_ma_cm2: float | None
    on_time_total_s: float | None
    adverse_event_count: int
    aborted_count: int
    interrupted_count: int
    out_of_limits_count: int


class SummaryPublic(BaseModel):
    group_by: list[GroupKey]
    filter: SessionFilter
    rows: list[SummaryRowPublic]


@router.get("/summary", response_model=SummaryPublic)
def summary(
    _query: StrictQuery,
    db: SessionDep,
    filters: SessionFilterDep,
    group_by: Annotated[
        list[str] | None,
        Query(
            max_length=20,
            description="Comma-separated group keys: day, week or month (UTC), modality, body_site, "
            "program, device, practitioner, client. None: one row over every matching session.",
            examples=["month,modality"],
        ),
    ] = None,
) -> SummaryPublic:
    """Session counts and dose aggregates grouped by time and category, computed by the database."""
    try:
        keys = parse_group_by(group_by)
    except AnalyticsInputError as error:
        raise input_problem(error) from None
    rows = summarise(db, filters, keys)
    return SummaryPublic(
        group_by=list(keys),
        filter=filters,
        rows=[
            SummaryRowPublic.model_validate(
                {"group": row.group, **{m: row.metrics[m] for m in METRICS}}
            )
            for row in rows
        ],
    )


def _file_chunks(
    export_format: exports.ExportFormat, engine: Any, filters: SessionFilter
) -> Iterator[bytes]:
    """Parquet needs its footer last, so it is written to a spooled file first, then streamed."""
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        exports.write_parquet(engine, filters, spool)  # type: ignore[arg-type]
        spool.seek(0)
        while chunk := spool.read(STREAM_CHUNK_BYTES):
            yield chunk


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The export file, streamed.",
            "content": {media: {} for media in exports.MEDIA_TYPES.values()},
        }
    },
)
def export(
    _query: StrictQuery,
    request: Request,
    db: SessionDep,
    audit: AuditorDep,
    filters: SessionFilterDep,
    engine: Annotated[Any, Depends(get_engine)],
    export_format: Annotated[
        str,
        Query(
            alias="format",
            max_length=20,
            description="csv (units in the column names), parquet, or fhir (an R4B Bundle).",
        ),
    ] = "csv",
) -> StreamingResponse:
    """Stream the matching sessions as CSV, Parquet or a FHIR Bundle."""
    try:
        chosen = exports.parse_format(export_format)
    except AnalyticsInputError as error:
        raise input_problem(error) from None
    # An export is an access to client data: it is audited with its filters before it streams.
    audit.record(
        "export", "session", after={"format": chosen.value, "query": dict(request.query_params)}
    )
    # End the request's own transaction (sign-in checks ran in it) before streaming: the export
    # reads on its own connections, and on SQLite an open transaction would hold the database lock.
    db.commit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"sessions-{stamp}.{exports.FILE_SUFFIXES[chosen]}"
    body: Iterator[bytes] | Iterator[str]
    if chosen is exports.ExportFormat.CSV:
        body = exports.iter_csv(engine, filters)
    elif chosen is exports.ExportFormat.FHIR:
        body = exports.iter_fhir_bundle(engine, filters)
    else:
        body = _file_chunks(chosen, engine, filters)
    return StreamingResponse(
        body,
        media_type=exports.MEDIA_TYPES[chosen],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
