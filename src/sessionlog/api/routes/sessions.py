"""Sessions: record a session delivered on a standalone device, read it back, add notes and events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, Security, status

from sessionlog.analytics.filters import FILTER_FIELDS, AnalyticsInputError
from sessionlog.analytics.queries import SORT_FIELDS, parse_sort, session_page
from sessionlog.api.auth import AuditorDep, authorize
from sessionlog.api.deps import PathId, SessionDep
from sessionlog.api.idempotency import IdempotencyDep
from sessionlog.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, ListResponse
from sessionlog.api.problems import PROBLEM_RESPONSES
from sessionlog.api.routes.analytics import SessionFilterDep, input_problem, reject_unknown
from sessionlog.api.routes.crud import fetch
from sessionlog.schemas import (
    AdverseEventCreate,
    EnteredInError,
    NoteCreate,
    SessionCorrection,
    SessionEventPublic,
    SessionPublic,
    SessionRecordCreate,
)
from sessionlog.security.principal import Principal
from sessionlog.security.scopes import Scope
from sessionlog.sessions import records
from sessionlog.store.models import TreatmentSession

router = APIRouter(prefix="/sessions", tags=["sessions"], responses=PROBLEM_RESPONSES)
Reader = Annotated[Principal, Security(authorize, scopes=[Scope.SESSIONS_READ])]
Writer = Annotated[Principal, Security(authorize, scopes=[Scope.SESSIONS_WRITE])]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SessionPublic)
def record_session(
    data: SessionRecordCreate,
    db: SessionDep,
    response: Response,
    _: Writer,
    audit: AuditorDep,
    idempotency: IdempotencyDep,
) -> Any:
    """Record a session that was delivered on a standalone device.

    Out-of-limit parameters do not refuse the record: it is stored with `out_of_limits` set and the
    violations the standard profile finds.
    """
    replayed = idempotency.replay(data)
    if replayed is not None:
        return replayed
    session = records.record_standalone_session(db, data)
    result = records.to_public(db, session, just_written=data.plan)
    audit.record("create", "session", session.id, after=result.model_dump(mode="json"))
    headers = {"Location": f"/sessions/{session.id}"}
    response.headers.update(headers)
    idempotency.remember(data, status.HTTP_201_CREATED, result, headers)
    return result


@router.get("", response_model=ListResponse[SessionPublic])
def list_sessions(
    request: Request,
    db: SessionDep,
    filters: SessionFilterDep,
    _: Reader,
    audit: AuditorDep,
    cursor: Annotated[
        str | None, Query(max_length=400, description="Opaque cursor from `next_cursor`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    sort: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Sort column, `-` for descending (NULLs last either way; ties by id): "
            + ", ".join(SORT_FIELDS),
            examples=["-started_at"],
        ),
    ] = None,
) -> Any:
    """Session history with the analytics filters, a sort order and stable cursor paging."""
    reject_unknown(request, (*FILTER_FIELDS, "cursor", "limit", "sort"))
    try:
        order = parse_sort(sort)
        found = session_page(db, filters, sort=order, cursor=cursor, limit=limit)
    except AnalyticsInputError as error:
        raise input_problem(error) from None
    if found.items:
        audit.record("read", "session", after={"ids": [s.id for s in found.items]})
    return {
        "items": [records.to_public(db, s) for s in found.items],
        "next_cursor": found.next_cursor,
    }


@router.get("/{session_id}", response_model=SessionPublic)
def read_session(session_id: PathId, db: SessionDep, _: Reader, audit: AuditorDep) -> SessionPublic:
    session = fetch(db, TreatmentSession, "session", session_id)
    audit.record("read", "session", session_id)
    return records.to_public(db, session)


@router.get("/{session_id}/events", response_model=list[SessionEventPublic])
def list_events(
    session_id: PathId, db: SessionDep, _: Reader, audit: AuditorDep
) -> list[SessionEventPublic]:
    fetch(db, TreatmentSession, "session", session_id)
    audit.record("read", "session_events", session_id)
    return [SessionEventPublic.model_validate(e) for e in records.session_events(db, session_id)]


@router.post(
    "/{session_id}/corrections",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionPublic,
    responses={409: {"description": "The session is still open, or a newer version exists"}},
)
def correct_session(
    session_id: PathId,
    data: SessionCorrection,
    db: SessionDep,
    principal: Writer,
    audit: AuditorDep,
) -> SessionPublic:
    """Correct an ended session: a new version supersedes it; the old one is kept as it was."""
    session = fetch(db, TreatmentSession, "session", session_id)
    before = records.to_public(db, session).model_dump(mode="json")
    corrected = records.correct_session(db, session, data, actor_id=principal.user_id)
    after = records.to_public(db, corrected)
    audit.record(
        "correct",
        "session",
        session_id,
        before=before,
        after=after.model_dump(mode="json"),
        reason=data.reason,
    )
    return after


@router.post(
    "/{session_id}/entered-in-error",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionPublic,
    responses={409: {"description": "The session is still open, or a newer version exists"}},
)
def enter_in_error(
    session_id: PathId, data: EnteredInError, db: SessionDep, principal: Writer, audit: AuditorDep
) -> SessionPublic:
    """Remove a record that should not exist: a new version with status `entered_in_error`."""
    session = fetch(db, TreatmentSession, "session", session_id)
    marked = records.mark_entered_in_error(db, session, data.reason, actor_id=principal.user_id)
    audit.record(
        "entered_in_error", "session", session_id, reason=data.reason, after={"id": marked.id}
    )
    return records.to_public(db, marked)


@router.post(
    "/{session_id}/notes", status_code=status.HTTP_201_CREATED, response_model=SessionEventPublic
)
def add_note(
    session_id: PathId, data: NoteCreate, db: SessionDep, principal: Writer, audit: AuditorDep
) -> SessionEventPublic:
    session = fetch(db, TreatmentSession, "session", session_id)
    event = records.add_note(db, session, data, actor_id=principal.user_id)
    audit.record(
        "create", "session_event", event.id, after={"session_id": session_id, "kind": "note"}
    )
    return SessionEventPublic.model_validate(event)


@router.post(
    "/{session_id}/adverse-events",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionEventPublic,
)
def add_adverse_event(
    session_id: PathId,
    data: AdverseEventCreate,
    db: SessionDep,
    principal: Writer,
    audit: AuditorDep,
) -> SessionEventPublic:
    session = fetch(db, TreatmentSession, "session", session_id)
    event = records.add_adverse_event(db, session, data, actor_id=principal.user_id)
    audit.record(
        "create",
        "session_event",
        event.id,
        after={"session_id": session_id, "kind": "adverse_event"},
    )
    return SessionEventPublic.model_validate(event)
