"""API keys for stations and integrations: created for a user, shown once, revocable.

A create accepts ``Idempotency-Key`` like every creating POST, with one difference: the key's
secret is shown only in the first answer and is stored nowhere (only its hash is), so a retry with
the same key and body does not replay that answer. It creates no second key either: it is a 409
naming the header and the key the first request created, to be revoked if its answer was lost.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Response, Security, status
from pydantic import BaseModel, ConfigDict, Field

from sessionlog.api.auth import AuditorDep, authorize
from sessionlog.api.deps import PathId, SessionDep
from sessionlog.api.idempotency import IdempotencyDep
from sessionlog.api.pagination import ListResponse, PageDep, encode_cursor
from sessionlog.api.problems import PROBLEM_RESPONSES, FieldError, ProblemError
from sessionlog.api.query import StrictQuery
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


def already_issued(key_id: object) -> ProblemError:
    """The answer to a retried create: the key exists, but its secret cannot be shown again."""
    reason = (
        f"this key already created API key {key_id}, whose secret was shown only in that "
        "answer and is not stored"
    )
    return ProblemError(
        409,
        "API key already created for this Idempotency-Key",
        detail=f"{reason}: if that answer was lost, revoke key {key_id} "
        f"(DELETE /api/v1/keys/{key_id}) and create another with a new Idempotency-Key",
        kind="idempotency-secret-shown-once",
        errors=[FieldError(field="Idempotency-Key", reason=reason, location="header")],
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses={
        409: {
            "description": "The Idempotency-Key already created a key (its secret is not shown "
            "again), or is in use by a request still in progress"
        }
    },
)
def create_key(
    data: KeyCreate,
    db: SessionDep,
    _: KeyAdmin,
    audit: AuditorDep,
    idempotency: IdempotencyDep,
) -> Any:
    """Create a key for a user; the answer shows the key once (see the module's note on retries)."""
    first = idempotency.replay(data)
    if first is not None:
        raise already_issued(json.loads(bytes(first.body)).get("id"))
    if db.get(User, data.user_id) is None:
        raise InvalidFieldError("user_id", f"no user with id {data.user_id}")
    secret = api_keys.new_key_secret()
    key = repository.add(
        db, ApiKey(user_id=data.user_id, name=data.name, secret_hash=api_keys.hash_secret(secret))
    )
    assert key.id is not None
    audit.record("create", "api_key", key.id, after={"user_id": key.user_id, "name": key.name})
    public = KeyPublic.model_validate(key)
    # Only the public part is remembered: the secret is stored nowhere, not even here.
    idempotency.remember(data, status.HTTP_201_CREATED, public, {})
    return KeyCreated(**public.model_dump(), key=api_keys.format_key(key.id, secret))


@router.get("", response_model=ListResponse[KeyPublic])
def list_keys(_: KeyAdmin, _query: StrictQuery, db: SessionDep, page: PageDep) -> Any:
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
