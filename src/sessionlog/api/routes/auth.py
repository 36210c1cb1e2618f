"""Signing in: the OAuth2 password flow that issues access tokens, and who the caller is.

Failed attempts are limited per username and per client address; a refused attempt is answered
with 429 and ``Retry-After`` before any password is checked. Logins and refusals are audited;
passwords and tokens never appear in logs or in the audit trail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from sessionlog.api.auth import authorize
from sessionlog.api.deps import SessionDep
from sessionlog.api.problems import (
    PROBLEM_JSON,
    PROBLEM_RESPONSES,
    FieldError,
    Problem,
    ProblemError,
)
from sessionlog.api.query import StrictQuery
from sessionlog.security.passwords import verify_password
from sessionlog.security.principal import Principal
from sessionlog.security.rate_limit import LoginRateLimiter
from sessionlog.security.scopes import Scope, scopes_for_role
from sessionlog.security.tokens import issue_token
from sessionlog.store.audit import append_event
from sessionlog.store.models import User

router = APIRouter(
    prefix="/auth",
    tags=["auth"],
    responses={
        **PROBLEM_RESPONSES,
        429: {"description": "Too many failed sign-ins; see Retry-After"},
    },
)


class OAuthProblem(Problem):
    """A problem document that is also an OAuth2 error response (RFC 6749 §5.2)."""

    error: str = Field(examples=["invalid_scope"])
    error_description: str = Field(examples=["the practitioner role does not grant users:write"])


INVALID_SCOPE_RESPONSE: dict[int | str, dict[str, Any]] = {
    400: {
        "model": OAuthProblem,
        "description": "invalid_scope: `scope` asks for a scope the account's role does not grant "
        "(or that does not exist); the problem names each one",
        "content": {PROBLEM_JSON: {}},
    }
}


MAX_SCOPES_NAMED = 20
"""Refused scopes named one by one; the form field is unbounded text, the answer is not."""


def _shown(name: str) -> str:
    """A scope name as it may appear in an answer or the audit trail: escaped, bounded."""
    return ascii(name)[1:-1][:64]


def invalid_scope(role: str, refused: list[str]) -> ProblemError:
    """RFC 6749 §5.2 ``invalid_scope`` (400), as a problem naming ``scope`` and what was refused."""
    more = len(refused) - MAX_SCOPES_NAMED
    refused = refused[:MAX_SCOPES_NAMED]
    listed = ", ".join(_shown(name) for name in refused) + (f" and {more} more" if more > 0 else "")
    description = f"the {role} role does not grant {listed}"
    return ProblemError(
        400,
        "Scope refused",
        detail=f"{description}: ask only for scopes the role grants, or leave scope out",
        kind="invalid-scope",
        errors=[
            FieldError(
                field="scope",
                reason=f"{_shown(name)} is not granted to the {role} role"
                if name in Scope._value2member_map_
                else f"{_shown(name)} is not a scope",
                location="body",
            )
            for name in refused
        ],
        extensions={
            "error": "invalid_scope",
            # RFC 6749 allows printable ASCII but for the quote and the backslash here.
            "error_description": "".join(
                c for c in description if " " <= c <= "~" and c not in '"\\'
            ),
        },
    )


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth2 token type, not a secret)
    expires_at: datetime
    scope: str


class Me(BaseModel):
    user_id: int
    username: str
    role: str
    scopes: list[str]
    via: str


def _find_user(db: Session, username: str) -> User | None:
    """The account named ``username``, if any.

    A name with a NUL character cannot be stored (PostgreSQL refuses it in text, even in a query),
    so no account has it: it is looked up nowhere and the attempt fails like any unknown name,
    rate-limited and audited, instead of failing in the database.
    """
    if "\x00" in username:
        return None
    return db.exec(select(User).where(User.username == username)).first()


@router.post("/token", response_model=TokenResponse, responses=INVALID_SCOPE_RESPONSE)
def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, db: SessionDep
) -> TokenResponse:
    """Exchange a username and password for a bearer token (OAuth2 password flow).

    `scope` may ask for fewer scopes than the role grants. A scope the role does not grant (or
    that does not exist) is refused with the OAuth2 error `invalid_scope` (400) naming it: no token
    is issued then, rather than one with fewer scopes than asked for.
    """
    limiter: LoginRateLimiter = request.app.state.login_limiter
    address = request.client.host if request.client else "unknown"
    keys = (f"user:{form.username.lower()}", f"address:{address}")
    wait_s = limiter.retry_after_s(*keys)
    if wait_s > 0:
        error = ProblemError(
            429, "Too many sign-in attempts", detail="try again later", kind="rate-limited"
        )
        error.headers = {"Retry-After": str(max(1, round(wait_s)))}
        raise error
    user = _find_user(db, form.username)
    valid = verify_password(form.password, user.password_hash if user else None)
    if user is None or not valid or not user.active:
        limiter.failed(*keys)
        append_event(
            db,
            actor_id=user.id if user else None,
            actor_via="sign-in",
            action="sign_in_refused",
            resource="user",
            resource_id=user.id if user else None,
        )
        db.commit()
        error = ProblemError(
            401, "Sign-in refused", detail="unknown user or wrong password", kind="unauthenticated"
        )
        error.headers = {"WWW-Authenticate": "Bearer"}
        raise error
    limiter.succeeded(keys[0])
    role_scopes = scopes_for_role(user.role)
    refused = sorted({s for s in form.scopes if s not in {str(r) for r in role_scopes}})
    if refused:
        append_event(
            db,
            actor_id=user.id,
            actor_via="sign-in",
            action="sign_in_refused",
            resource="user",
            resource_id=user.id,
            reason="invalid_scope: " + " ".join(_shown(n) for n in refused[:MAX_SCOPES_NAMED]),
        )
        db.commit()
        raise invalid_scope(user.role, refused)
    granted = frozenset(Scope(s) for s in form.scopes) if form.scopes else role_scopes
    assert user.id is not None
    token, expires = issue_token(
        request.app.state.auth_secret, user_id=user.id, role=user.role, scopes=granted
    )
    append_event(
        db,
        actor_id=user.id,
        actor_via="sign-in",
        action="sign_in",
        resource="user",
        resource_id=user.id,
    )
    return TokenResponse(access_token=token, expires_at=expires, scope=" ".join(sorted(granted)))


@router.get("/me", response_model=Me)
def who_am_i(principal: Annotated[Principal, Security(authorize)], _query: StrictQuery) -> Me:
    return Me(
        user_id=principal.user_id,
        username=principal.username,
        role=principal.role,
        scopes=sorted(principal.scopes),
        via=principal.via,
    )
