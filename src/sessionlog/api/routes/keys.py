"""API keys for stations and integrations: created for a user, shown once, revocable."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Response, Security, status
from pydantic import BaseModel, ConfigDict, Field

from sessionlog.api.auth import AuditorDep, authorize
from sessionlog.api.deps import PathId, SessionDep
from sessionlog.api.pagination import ListResponse, PageDep, encode_cursor
from sessionlog.api.problems import PROBLEM_RESPONSES
from sessionlog.api.routes.crud import fetch
from sessionlog.errors import ConflictError, InvalidFieldError
from sessionlog.fields import RecordId, ShortText
from sessionlog.security import api_keys
from sessionlog.security.principal import Principal
from sessionlog.security.scopes import Scope
from sessionlog.store import repository
from sessionlog.store.models import ApiKey, User
from sessionlog.store.types import utc_now

router = APIRouter(prefix="/keys", tags=["keys"], responses=PROBLEM_RESPONSES)
KeyAdmin = Annotated[Principal, Security(authorize, scopes=[Scope.KEYS_WRITE])]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: RecordId = Field(
        description="The account the key acts as (its role decides the scopes)"
    )
    name: ShortText = Field(examples=["treatment room 2 station"])


class KeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself. It is shown only now; store it safely.")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(data: KeyCreate, db: SessionDep, _: KeyAdmin, audit: AuditorDep) -> Any:
    if db.get(User, data.user_id) is None:
        raise InvalidFieldError("user_id", f"no user with id {data.user_id}")
    secret = api_keys.new_key_secret()
    key = repository.add(
        db, ApiKey(user_id=data.user_id, name=data.name, secret_hash=api_keys.hash_secret(secret))
    )
    assert key.id is not None
    audit.record("create", "api_key", key.id, after={"user_id": key.user_id, "name": key.name})
    return KeyCreated(
        **KeyPublic.model_validate(key).model_dump(), key=api_keys.format_key(key.id, secret)
    )


@router.get("", response_model=ListResponse[KeyPublic])
def list_keys(db: SessionDep, page: PageDep, _: KeyAdmin) -> Any:
    found = repository.list_page(db, ApiKey, after_id=page.after_id, limit=page.limit)
    next_cursor = encode_cursor(found.last_id) if found.has_more and found.last_id else None
    return {"items": [KeyPublic.model_validate(k) for k in found.items], "next_cursor": next_cursor}


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: PathId, db: SessionDep, _: KeyAdmin, audit: AuditorDep) -> Response:
    """Revoke a key at once; it stays listed, with the time it was revoked."""
    key = fetch(db, ApiKey, "api key", key_id)
    if key.revoked_at is not None:
        raise ConflictError("key_id", f"key {key_id} was already revoked")
    key.revoked_at = utc_now()
    db.add(key)
    audit.record("revoke", "api_key", key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
