"""Sessions: record a session delivered on a standalone device, read it back, add notes and events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from sessionlog.api.deps import PathId, SessionDep
from sessionlog.api.pagination import ListResponse, PageDep, encode_cursor
from sessionlog.api.problems import PROBLEM_RESPONSES
from sessionlog.api.routes.crud import fetch
from sessionlog.schemas import (
    AdverseEventCreate,
    NoteCreate,
    SessionEventPublic,
    SessionPublic,
    SessionRecordCreate,
)
from sessionlog.sessions import records
from sessionlog.store import repository
from sessionlog.store.models import TreatmentSession

router = APIRouter(prefix="/sessions", tags=["sessions"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SessionPublic)
def record_session(data: SessionRecordCreate, db: SessionDep, response: Response) -> SessionPublic:
    """Record a session that was delivered on a standalone device.

    Out-of-limit parameters do not refuse the record: it is stored with `out_of_limits` set and the
    violations the standard profile finds.
    """
    session = records.record_standalone_session(db, data)
    response.headers["Location"] = f"/sessions/{session.id}"
    return records.to_public(db, session)


@router.get("", response_model=ListResponse[SessionPublic])
def list_sessions(db: SessionDep, page: PageDep) -> Any:
    found = repository.list_page(db, TreatmentSession, after_id=page.after_id, limit=page.limit)
    next_cursor = encode_cursor(found.last_id) if found.has_more and found.last_id else None
    return {"items": [records.to_public(db, s) for s in found.items], "next_cursor": next_cursor}


@router.get("/{session_id}", response_model=SessionPublic)
def read_session(session_id: PathId, db: SessionDep) -> SessionPublic:
    return records.to_public(db, fetch(db, TreatmentSession, "session", session_id))


@router.get("/{session_id}/events", response_model=list[SessionEventPublic])
def list_events(session_id: PathId, db: SessionDep) -> list[SessionEventPublic]:
    fetch(db, TreatmentSession, "session", session_id)
    return [SessionEventPublic.model_validate(e) for e in records.session_events(db, session_id)]


@router.post(
    "/{session_id}/notes", status_code=status.HTTP_201_CREATED, response_model=SessionEventPublic
)
def add_note(session_id: PathId, data: NoteCreate, db: SessionDep) -> SessionEventPublic:
    session = fetch(db, TreatmentSession, "session", session_id)
    return SessionEventPublic.model_validate(records.add_note(db, session, data, actor_id=None))


@router.post(
    "/{session_id}/adverse-events",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionEventPublic,
)
def add_adverse_event(
    session_id: PathId, data: AdverseEventCreate, db: SessionDep
) -> SessionEventPublic:
    session = fetch(db, TreatmentSession, "session", session_id)
    event = records.add_adverse_event(db, session, data, actor_id=None)
    return SessionEventPublic.model_validate(event)
