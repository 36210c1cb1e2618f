"""Sessions: record a session delivered on a standalone device, read it back, add notes and events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, Security, status

from sessionlog.analytics.filters import AnalyticsInputError
from sessionlog.analytics.queries import SORT_FIELDS, parse_sort, session_page
from sessionlog.api.auth import AuditorDep, authorize
from sessionlog.api.deps import PathId, SessionDep
from sessionlog.api.idempotency import IdempotencyDep
from sessionlog.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, ListResponse
from sessionlog.api.problems import PROBLEM_RESPONSES, FieldError, ProblemError
from sessionlog.api.query import StrictQuery
from sessionlog.api.routes.analytics import SessionFilterDep, input_problem
from sessionlog.api.routes.crud import fetch
from sessionlog.safety.plan import StimulationPlan
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
    _: Reader,
    _query: StrictQuery,
    db: SessionDep,
    filters: SessionFilterDep,
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
def read_session(
    session_id: PathId, db: SessionDep, _: Reader, _query: StrictQuery, audit: AuditorDep
) -> SessionPublic:
    session = fetch(db, TreatmentSession, "session", session_id)
    audit.record("read", "session", session_id)
    return records.to_public(db, session)


@router.get("/{session_id}/events", response_model=list[SessionEventPublic])
def list_events(
    session_id: PathId, db: SessionDep, _: Reader, _query: StrictQuery, audit: AuditorDep
) -> list[SessionEventPublic]:
    fetch(db, TreatmentSession, "session", session_id)
    audit.record("read", "session_events", session_id)
    return [SessionEventPublic.model_validate(e) for e in records.session_events(db, session_id)]


def _same_plan(sent: StimulationPlan, current: StimulationPlan) -> bool:
    """Whether a corrected plan would store what the version holds (a plan without a program
    name keeps the version's, and channels are stored by number, whatever order they came in)."""
    effective = sent.model_copy(
        update={
            "program_name": sent.program_name or current.program_name,
            "channels": tuple(sorted(sent.channels, key=lambda c: c.channel)),
        }
    )
    ordered = current.model_copy(
        update={"channels": tuple(sorted(current.channels, key=lambda c: c.channel))}
    )
    return effective == ordered


def refuse_unchanged(data: SessionCorrection, current: SessionPublic) -> None:
    """A correction must change something: one naming no field, or only fields whose values equal
    the version's, would store a new version identical to it (422 naming each field)."""
    sent = [name for name in SessionCorrection.corrected_fields if name in data.model_fields_set]
    if not sent:
        listed = ", ".join(SessionCorrection.corrected_fields)
        reason = f"names nothing to correct: give at least one of {listed} besides the reason"
        raise ProblemError(
            422,
            "Correction changes nothing",
            detail=f"body: {reason}",
            kind="unchanged-correction",
            errors=[FieldError(field="body", reason=reason, location="body")],
        )
    unchanged = [
        name
        for name in sent
        if (
            _same_plan(data.plan, current.plan)
            if name == "plan" and data.plan is not None
            else getattr(data, name) == getattr(current, name)
        )
    ]
    if len(unchanged) == len(sent):
        reason = f"equals the value of version {current.id}: the correction would change nothing"
        raise ProblemError(
            422,
            "Correction changes nothing",
            detail="; ".join(f"{name}: {reason}" for name in unchanged),
            kind="unchanged-correction",
            errors=[FieldError(field=name, reason=reason, location="body") for name in unchanged],
        )


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
    response: Response,
    principal: Writer,
    audit: AuditorDep,
    idempotency: IdempotencyDep,
) -> Any:
    """Correct an ended session: a new version supersedes it; the old one is kept as it was.

    Fields left out keep their value; `null` is refused for every field. A correction that names
    no field, or only values the version already holds, is refused (422) rather than stored as an
    identical version.
    """
    replayed = idempotency.replay(data)
    if replayed is not None:
        return replayed
    session = fetch(db, TreatmentSession, "session", session_id)
    # A version that cannot be corrected at all is a 409, whatever the correction says.
    records.latest_version_check(db, session)
    current = records.to_public(db, session)
    refuse_unchanged(data, current)
    corrected = records.correct_session(db, session, data, actor_id=principal.user_id)
    after = records.to_public(db, corrected)
    audit.record(
        "correct",
        "session",
        session_id,
        before=current.model_dump(mode="json"),
        after=after.model_dump(mode="json"),
        reason=data.reason,
    )
    headers = {"Location": f"/sessions/{after.id}"}
    response.headers.update(headers)
    idempotency.remember(data, status.HTTP_201_CREATED, after, headers)
    return after


@router.post(
    "/{session_id}/entered-in-error",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionPublic,
    responses={409: {"description": "The session is still open, or a newer version exists"}},
)
def enter_in_error(
    session_id: PathId,
    data: EnteredInError,
    db: SessionDep,
    response: Response,
    principal: Writer,
    audit: AuditorDep,
    idempotency: IdempotencyDep,
) -> Any:
    """Remove a record that should not exist: a new version with status `entered_in_error`."""
    replayed = idempotency.replay(data)
    if replayed is not None:
        return replayed
    session = fetch(db, TreatmentSession, "session", session_id)
    marked = records.mark_entered_in_error(db, session, data.reason, actor_id=principal.user_id)
    audit.record(
        "entered_in_error", "session", session_id, reason=data.reason, after={"id": marked.id}
    )
    result = records.to_public(db, marked)
    headers = {"Location": f"/sessions/{result.id}"}
    response.headers.update(headers)
    idempotency.remember(data, status.HTTP_201_CREATED, result, headers)
    return result


@router.post(
    "/{session_id}/notes", status_code=status.HTTP_201_CREATED, response_model=SessionEventPublic
)
def add_note(
    session_id: PathId,
    data: NoteCreate,
    db: SessionDep,
    principal: Writer,
    audit: AuditorDep,
    idempotency: IdempotencyDep,
) -> Any:
    replayed = idempotency.replay(data)
    if replayed is not None:
        return replayed
    session = fetch(db, TreatmentSession, "session", session_id)
    event = records.add_note(db, session, data, actor_id=principal.user_id)
    audit.record(
        "create", "session_event", event.id, after={"session_id": session_id, "kind": "note"}
    )
    result = SessionEventPublic.model_validate(event)
    idempotency.remember(data, status.HTTP_201_CREATED, result, {})
    return result


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
    idempotency: IdempotencyDep,
) -> Any:
    replayed = idempotency.replay(data)
    if replayed is not None:
        return replayed
    session = fetch(db, TreatmentSession, "session", session_id)
    event = records.add_adverse_event(db, session, data, actor_id=principal.user_id)
    audit.record(
        "create",
        "session_event",
        event.id,
        after={"session_id": session_id, "kind": "adverse_event"},
    )
    result = SessionEventPublic.model_validate(event)
    idempotency.remember(data, status.HTTP_201_CREATED, result, {})
    return result
