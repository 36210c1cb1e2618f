"""One router factory for the plain record resources (users, clients, devices, programs).

Create, read, list and update behave identically on each: unique fields are checked before the insert
so a duplicate is a 409 naming the field, reads carry an ``ETag`` built from the row version, an
update must send ``If-Match`` (428 without it; 412 when the record changed meanwhile, checked again by
the UPDATE itself so concurrent writers of one version cannot both win), a create may send
``Idempotency-Key``, a read or a list refuses unknown and repeated query parameters, each route
requires its scope, and every change is audited.
"""

# No `from __future__ import annotations` here: FastAPI reads the closures' annotations at runtime.

from collections.abc import Callable, Collection, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, Security, status
from pydantic import BaseModel
from sqlmodel import Session, SQLModel, col, select

from sessionlog.api.auth import AuditorDep, authorize
from sessionlog.api.deps import PathId, SessionDep
from sessionlog.api.idempotency import IdempotencyDep
from sessionlog.api.pagination import ListResponse, PageDep, encode_cursor
from sessionlog.api.problems import PROBLEM_RESPONSES, ProblemError
from sessionlog.api.query import StrictQuery
from sessionlog.errors import ConflictError, RecordNotFoundError
from sessionlog.security.principal import Principal
from sessionlog.security.scopes import Scope
from sessionlog.store import repository
from sessionlog.store.audit import snapshot
from sessionlog.store.repository import Row, StaleVersionError


def etag_of_version(record_id: int, version: int) -> str:
    return f'W/"{record_id}-{version}"'


def etag_of(row: Any) -> str:
    return etag_of_version(row.id, row.version)


def check_if_match(row: Any, if_match: str | None) -> int | None:
    """Refuse a change without ``If-Match`` (428) or made against a stale version (412).

    Returns the version the update must still find in the database, or None for ``*`` (any
    current version will do, as RFC 9110 defines it).
    """
    if if_match is None:
        raise ProblemError(
            428,
            "Precondition required",
            detail=f"send If-Match with the record's ETag (now {etag_of(row)}) to change it",
            kind="if-match-required",
        )
    candidates = {tag.strip() for tag in if_match.split(",")}
    if "*" in candidates:
        return None
    if etag_of(row) in candidates:
        version: int = row.version
        return version
    raise ProblemError(
        412,
        "Precondition failed",
        detail=f"the record changed: its current ETag is {etag_of(row)}",
        kind="stale-version",
    )


def stale_version(record_id: int, current_version: int | None) -> ProblemError:
    """The 412 for an update that lost the race to another writer of the same version."""
    now = f" (now {etag_of_version(record_id, current_version)})" if current_version else ""
    return ProblemError(
        412,
        "Precondition failed",
        detail=f"the record changed while this update was made{now}: read it again",
        kind="stale-version",
    )


def fetch(db: Session, model: type[Row], resource: str, record_id: int) -> Row:
    row = repository.get(db, model, record_id)
    if row is None:
        raise RecordNotFoundError(resource, record_id)
    return row


def crud_router(
    *,
    resource: str,
    path: str,
    model: type[SQLModel],
    create_schema: type[BaseModel],
    update_schema: type[BaseModel],
    public_schema: type[BaseModel],
    unique: Sequence[str],
    tag: str,
    read_scope: Scope,
    write_scope: Scope,
    audit_reads: bool = False,
    to_row: Callable[[BaseModel], dict[str, Any]] | None = None,
    check: Callable[[dict[str, Any], Collection[str]], None] | None = None,
) -> APIRouter:
    """Build the standard routes for ``model``; ``unique`` names the fields that identify a record.

    Every route requires ``read_scope`` or ``write_scope``; every change is audited with its before
    and after, and with ``audit_reads`` (client data) every read is audited too. ``check``, if
    given, sees the record's values as they would be written (all of them, on an update too) and
    the names of those the request sets, and may refuse them with a ``DomainError`` before
    anything is written.
    """
    router = APIRouter(prefix=path, tags=[tag], responses=PROBLEM_RESPONSES)
    dump = to_row or (lambda data: data.model_dump(mode="json"))
    Public: Any = public_schema  # noqa: N806  (used as a type in the routes below)
    Create: Any = create_schema  # noqa: N806
    Update: Any = update_schema  # noqa: N806
    Reader = Annotated[Principal, Security(authorize, scopes=[read_scope])]  # noqa: N806
    Writer = Annotated[Principal, Security(authorize, scopes=[write_scope])]  # noqa: N806

    def ensure_unique(db: Session, values: dict[str, Any]) -> None:
        statement = select(model)
        for field in unique:
            statement = statement.where(col(getattr(model, field)) == values[field])
        if db.exec(statement).first() is not None:
            shown = ", ".join(f"{f}={values[f]!r}" for f in unique)
            raise ConflictError(unique[-1], f"a {resource} with {shown} already exists")

    @router.post("", status_code=status.HTTP_201_CREATED, response_model=Public)
    def create(
        data: Create,
        db: SessionDep,
        response: Response,
        _: Writer,
        audit: AuditorDep,
        idempotency: IdempotencyDep,
    ) -> Any:
        replayed = idempotency.replay(data)
        if replayed is not None:
            return replayed
        values = dump(data)
        if check is not None:
            check(values, values.keys())
        ensure_unique(db, values)
        row = repository.add(db, model(**values))
        audit.record("create", resource, row.id, after=snapshot(row))  # type: ignore[attr-defined]
        headers = {"ETag": etag_of(row), "Location": f"{path}/{row.id}"}  # type: ignore[attr-defined]
        response.headers.update(headers)
        result = Public.model_validate(row)
        idempotency.remember(data, status.HTTP_201_CREATED, result, headers)
        return result

    @router.get("", response_model=ListResponse[Public])
    def list_records(
        _: Reader, _query: StrictQuery, db: SessionDep, page: PageDep, audit: AuditorDep
    ) -> Any:
        found = repository.list_page(db, model, after_id=page.after_id, limit=page.limit)
        if audit_reads and found.items:
            ids = [r.id for r in found.items]  # type: ignore[attr-defined]
            audit.record("read", resource, after={"ids": ids})
        next_cursor = encode_cursor(found.last_id) if found.has_more and found.last_id else None
        return {
            "items": [Public.model_validate(r) for r in found.items],
            "next_cursor": next_cursor,
        }

    @router.get("/{record_id}", response_model=Public)
    def read(
        record_id: PathId,
        db: SessionDep,
        response: Response,
        _: Reader,
        _query: StrictQuery,
        audit: AuditorDep,
    ) -> Any:
        row = fetch(db, model, resource, record_id)
        if audit_reads:
            audit.record("read", resource, record_id)
        response.headers["ETag"] = etag_of(row)
        return Public.model_validate(row)

    @router.patch(
        "/{record_id}",
        response_model=Public,
        responses={
            412: {"description": "The record changed since the ETag was read (problem details)"},
            428: {"description": "If-Match is required (problem details)"},
        },
    )
    def update(
        record_id: PathId,
        data: Update,
        db: SessionDep,
        response: Response,
        _: Writer,
        audit: AuditorDep,
        if_match: Annotated[
            str | None,
            Header(max_length=200, description="The ETag of the version being changed (required)"),
        ] = None,
    ) -> Any:
        row = fetch(db, model, resource, record_id)
        expected_version = check_if_match(row, if_match)
        before = snapshot(row)
        # Fields the client sent, plus values derived from them (a password's hash).
        sent = data.model_fields_set
        changes = {
            name: value
            for name, value in dump(data).items()
            if name in sent or name not in type(data).model_fields
        }
        if check is not None:
            check({**before, **changes}, changes.keys())
        try:
            row = repository.update_versioned(db, row, changes, expected_version=expected_version)
        except StaleVersionError as stale:
            # Another writer changed the record between the read above and this UPDATE (which
            # matches only the version read): nothing was written, so nothing is audited.
            raise stale_version(record_id, stale.current_version) from None
        audit.record("update", resource, record_id, before=before, after=snapshot(row))
        response.headers["ETag"] = etag_of(row)
        return Public.model_validate(row)

    return router
