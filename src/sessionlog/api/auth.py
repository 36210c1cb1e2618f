"""Authentication and authorisation for every route: who is asking, and may they.

A request carries either an OAuth2 bearer token (a JWT from ``POST /auth/token``) or an API key in
``X-API-Key``. ``authorize`` resolves it to a ``Principal`` and checks the scopes the route declares
(FastAPI ``Security`` scopes, which also document them in OpenAPI). A token is tied to the role it
was issued for: if the user's role changes or the user is deactivated, the token stops working. The
``Auditor`` dependency writes audit events as that principal, inside the request's transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, SecurityScopes
from sqlalchemy import Connection, Engine, Row, Table, select
from sqlmodel import Session

from sessionlog.api.deps import SessionDep, get_engine
from sessionlog.api.problems import ProblemError
from sessionlog.security import api_keys
from sessionlog.security.principal import Principal
from sessionlog.security.scopes import SCOPE_DESCRIPTIONS, Scope, scopes_for_role
from sessionlog.security.tokens import InvalidTokenError, read_token
from sessionlog.store.audit import append_event
from sessionlog.store.database import read_only
from sessionlog.store.models import ApiKey, User

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token", scopes=dict(SCOPE_DESCRIPTIONS), auto_error=False
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="A key from POST /keys"
)


def _unauthorized(detail: str) -> ProblemError:
    error = ProblemError(401, "Authentication required", detail=detail, kind="unauthenticated")
    error.headers = {"WWW-Authenticate": "Bearer"}
    return error


USERS: Table = User.__table__  # type: ignore[attr-defined]
API_KEYS: Table = ApiKey.__table__  # type: ignore[attr-defined]


def _active_user(connection: Connection, user_id: int) -> Row[Any, Any, Any, Any] | None:
    """The account's current name and role, or None if it is gone or deactivated.

    Read on every request (a plain select, no ORM object): a deactivated account or a changed
    role takes effect on the next request, not when a token expires.
    """
    user = connection.execute(
        select(USERS.c.id, USERS.c.username, USERS.c.role, USERS.c.active).where(
            USERS.c.id == user_id
        )
    ).first()
    return user if user is not None and user.active else None


def _principal_from_token(connection: Connection, secret: str, token: str) -> Principal:
    try:
        user_id, token_role, scopes = read_token(secret, token)
    except InvalidTokenError as error:
        raise _unauthorized(str(error)) from error
    user = _active_user(connection, user_id)
    if user is None:
        raise _unauthorized("the account of this token does not exist or is deactivated")
    if user.role != token_role:
        raise _unauthorized("the account's role changed since this token was issued: sign in again")
    return Principal(user.id, user.username, user.role, scopes, "token")


def _principal_from_key(connection: Connection, presented: str) -> Principal:
    parsed = api_keys.parse_key(presented)
    key = (
        connection.execute(
            select(
                API_KEYS.c.id, API_KEYS.c.user_id, API_KEYS.c.secret_hash, API_KEYS.c.revoked_at
            ).where(API_KEYS.c.id == parsed[0])
        ).first()
        if parsed
        else None
    )
    if parsed is None or key is None or not api_keys.secret_matches(parsed[1], key.secret_hash):
        raise _unauthorized("the API key is not valid")
    if key.revoked_at is not None:
        raise _unauthorized("the API key has been revoked")
    user = _active_user(connection, key.user_id)
    if user is None:
        raise _unauthorized("the API key's account is deactivated")
    return Principal(
        user.id, user.username, user.role, scopes_for_role(user.role), f"api_key:{key.id}"
    )


def authorize(
    security_scopes: SecurityScopes,
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    # Its own short read-only transaction: the request's unit of work has not begun yet, so a
    # route that hands work to other transactions (live sessions) holds no lock meanwhile.
    with read_only(engine).connect() as connection:
        if token:
            principal = _principal_from_token(connection, request.app.state.auth_secret, token)
        elif api_key:
            principal = _principal_from_key(connection, api_key)
        else:
            raise _unauthorized("send a bearer token (POST /api/v1/auth/token) or an X-API-Key")
    missing = sorted(set(security_scopes.scopes) - set(principal.scopes))
    if missing:
        raise ProblemError(
            403,
            "Not allowed",
            detail=f"the {principal.role} role does not grant {', '.join(missing)}",
            kind="forbidden",
        )
    request.state.principal = principal
    return principal


class Auditor:
    """Writes audit events as the request's principal, in the request's transaction."""

    def __init__(self, db: Session, principal: Principal) -> None:
        self.db = db
        self.principal = principal

    def record(
        self,
        action: str,
        resource: str,
        resource_id: object | None = None,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        append_event(
            self.db,
            actor_id=self.principal.user_id,
            actor_via=self.principal.via,
            action=action,
            resource=resource,
            resource_id=resource_id,
            before=before,
            after=after,
            reason=reason,
        )


async def auditor(request: Request, db: SessionDep) -> Auditor:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # pragma: no cover - every audited route authorises first
        raise _unauthorized("not authenticated")
    return Auditor(db, principal)


AuditorDep = Annotated[Auditor, Depends(auditor)]
ALL_SCOPES = frozenset(Scope)
