"""``Idempotency-Key`` for creating POSTs: a retried request gets the first answer, not a duplicate.

The first response to a key is stored with a hash of the request (method, path, canonical body) in the
same transaction as the record it created. The same key with the same request replays that response;
the same key with a different request is a 422 naming the header. Keys are per principal, so two users
can never collide.

Two requests with the same key at the same time (a client retrying before the first answer arrived)
are serialised on the key before either looks for a stored answer: the second waits for the first
to commit, then finds its answer and replays it (or, if the first failed, does the work itself).
PostgreSQL takes a transaction-scoped advisory lock on the key; SQLite's write lock, taken at BEGIN
IMMEDIATE by every request transaction, already serialises them. Should a stored answer appear
anyway between the lookup and the insert, the loser answers 409 naming the header, as the IETF
Idempotency-Key draft describes for a request still in progress, instead of a generic conflict.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import IntegrityError

from sessionlog.api.deps import SessionDep
from sessionlog.api.problems import FieldError, ProblemError
from sessionlog.store.audit import canonical_json
from sessionlog.store.models import IdempotencyRecord
from sessionlog.store.types import utc_now

RECORDS: Table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
IDEMPOTENCY_HEADER_DOC = (
    "Any unique string (e.g. a UUID). Sending the same key and body again returns the first "
    "response instead of creating a second record."
)


class Idempotency:
    def __init__(self, request: Request, db: SessionDep, key: str | None) -> None:
        self.request = request
        self.db = db
        self.key = key

    def _principal(self) -> str:
        principal = getattr(self.request.state, "principal", None)
        return str(principal.user_id) if principal is not None else "anonymous"

    def _lock_key(self) -> None:
        """Wait until no other transaction holds this principal's key (PostgreSQL)."""
        connection = self.db.connection()
        if connection.dialect.name != "postgresql":
            return
        digest = hashlib.sha256(f"{self._principal()}\x00{self.key}".encode()).digest()
        lock_id = int.from_bytes(digest[:8], "big", signed=True)
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})

    def _hash(self, body: BaseModel) -> str:
        body_json = canonical_json(body.model_dump(mode="json"))
        request = f"{self.request.method} {self.request.url.path} {body_json}"
        return hashlib.sha256(request.encode()).hexdigest()

    def replay(self, body: BaseModel) -> JSONResponse | None:
        """The stored first response for this key, or None if the key is new (or absent)."""
        if self.key is None:
            return None
        self._lock_key()
        record = (
            self.db.connection()
            .execute(
                select(
                    RECORDS.c.request_hash,
                    RECORDS.c.response_body,
                    RECORDS.c.status_code,
                    RECORDS.c.response_headers,
                ).where(RECORDS.c.principal == self._principal(), RECORDS.c.key == self.key)
            )
            .first()
        )
        if record is None:
            return None
        if record.request_hash != self._hash(body):
            raise ProblemError(
                422,
                "Idempotency key reused for a different request",
                detail="this Idempotency-Key was first used with another method, path or body",
                kind="idempotency-mismatch",
                errors=[
                    FieldError(
                        field="Idempotency-Key",
                        reason="used before for a different request",
                        location="header",
                    )
                ],
            )
        return JSONResponse(
            content=json.loads(record.response_body),
            status_code=record.status_code,
            headers={**record.response_headers, "Idempotent-Replayed": "true"},
        )

    def remember(
        self, body: BaseModel, status_code: int, result: BaseModel, headers: dict[str, str]
    ) -> None:
        if self.key is None:
            return
        values = {
            "principal": self._principal(),
            "key": self.key,
            "method": self.request.method,
            "path": self.request.url.path,
            "request_hash": self._hash(body),
            "status_code": status_code,
            "response_body": result.model_dump_json(),
            "response_headers": headers,
            "created_at": utc_now(),
        }
        try:
            self.db.connection().execute(insert(RECORDS), values)
        except IntegrityError:
            # The only unique key of the table is (principal, key): another request stored an
            # answer for this key after our lookup. The whole transaction is rolled back.
            raise in_progress() from None


def in_progress() -> ProblemError:
    """The 409 for a request whose key another request, not yet finished, is using."""
    return ProblemError(
        409,
        "Request with this Idempotency-Key in progress",
        detail="another request with this Idempotency-Key is being processed; retry once it "
        "has finished to get its answer",
        kind="idempotency-in-progress",
        errors=[
            FieldError(
                field="Idempotency-Key",
                reason="a request with this key is still in progress",
                location="header",
            )
        ],
    )


async def idempotency(
    request: Request,
    db: SessionDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description=IDEMPOTENCY_HEADER_DOC,
        ),
    ] = None,
) -> Idempotency:
    return Idempotency(request, db, idempotency_key)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]
