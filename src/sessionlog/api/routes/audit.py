"""The audit trail for admins: list events and verify the hash chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Security
from pydantic import BaseModel, ConfigDict

from sessionlog.api.auth import authorize
from sessionlog.api.deps import SessionDep
from sessionlog.api.pagination import ListResponse, PageDep, encode_cursor
from sessionlog.api.problems import PROBLEM_RESPONSES
from sessionlog.api.query import StrictQuery
from sessionlog.security.principal import Principal
from sessionlog.security.scopes import Scope
from sessionlog.store import repository
from sessionlog.store.audit import verify_chain
from sessionlog.store.models import AuditEvent

router = APIRouter(prefix="/audit", tags=["audit"], responses=PROBLEM_RESPONSES)
AuditReader = Annotated[Principal, Security(authorize, scopes=[Scope.AUDIT_READ])]


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: int | None
    actor_via: str
    action: str
    resource: str
    resource_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    prev_hash: str
    hash: str


class ChainVerification(BaseModel):
    ok: bool
    events_checked: int
    first_broken_id: int | None
    problem: str | None


@router.get("", response_model=ListResponse[AuditEventPublic])
def list_audit_events(_: AuditReader, _query: StrictQuery, db: SessionDep, page: PageDep) -> Any:
    found = repository.list_page(db, AuditEvent, after_id=page.after_id, limit=page.limit)
    next_cursor = encode_cursor(found.last_id) if found.has_more and found.last_id else None
    return {
        "items": [AuditEventPublic.model_validate(e) for e in found.items],
        "next_cursor": next_cursor,
    }


@router.get("/verify", response_model=ChainVerification)
def verify_audit_chain(db: SessionDep, _: AuditReader, _query: StrictQuery) -> ChainVerification:
    """Recompute every link of the chain; report the first event that was changed or removed."""
    report = verify_chain(db)
    return ChainVerification(
        ok=report.ok,
        events_checked=report.events_checked,
        first_broken_id=report.first_broken_id,
        problem=report.problem,
    )
