"""Access tokens: short-lived JWTs (PyJWT, HS256) carrying the user, role and granted scopes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from sessionlog.security.scopes import Scope

ALGORITHM = "HS256"
ISSUER = "sessionlog"
TOKEN_LIFETIME = timedelta(hours=1)


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or not ours; the message says which, without the token."""


def issue_token(
    secret: str,
    *,
    user_id: int,
    role: str,
    scopes: frozenset[Scope],
    lifetime: timedelta = TOKEN_LIFETIME,
) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    expires = now + lifetime
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": str(user_id),
        "role": role,
        "scope": " ".join(sorted(scopes)),
        "iat": now,
        "exp": expires,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires


def read_token(secret: str, token: str) -> tuple[int, str, frozenset[Scope]]:
    """The user id, role and scopes of a valid token; ``InvalidTokenError`` otherwise."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise InvalidTokenError("the access token has expired") from error
    except jwt.PyJWTError as error:
        raise InvalidTokenError("the access token is not valid") from error
    try:
        user_id = int(claims["sub"])
        role = str(claims["role"])
        scopes = frozenset(Scope(s) for s in str(claims.get("scope", "")).split() if s)
    except (ValueError, KeyError) as error:
        raise InvalidTokenError("the access token is not valid") from error
    return user_id, role, scopes
