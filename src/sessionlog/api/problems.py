"""RFC 9457 problem details: the one shape every API error takes.

Handlers here translate request validation errors, HTTP errors, domain errors and database integrity
errors into ``application/problem+json`` with the field and the reason, so a client never has to parse
two error formats. A site policy that broke after start-up answers 503: the fault is the service's
configuration, not the request, and no plan is approved without the site layer until it is fixed. An
unexpected exception still answers as a problem (and is logged with its trace), but tests treat any
500 as a bug.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sessionlog.errors import (
    ConflictError,
    DomainError,
    InvalidFieldError,
    InvalidFieldsError,
    RecordNotFoundError,
)
from sessionlog.field_errors import format_location, named_field
from sessionlog.safety import SitePolicyError

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/problems/"

logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One reason a field was refused."""

    field: str = Field(examples=["plan.channels[0].amplitude_ua"])
    reason: str = Field(examples=["give amplitude_ua or amplitude_ma, not both"])
    location: str | None = Field(default=None, examples=["body"])


class Problem(BaseModel):
    """An RFC 9457 problem details document."""

    type: str = Field(default="about:blank", examples=["/problems/validation"])
    title: str = Field(examples=["Request validation failed"])
    status: int = Field(examples=[422])
    detail: str | None = Field(default=None, examples=["plan.duration_s: must be greater than 0"])
    instance: str | None = Field(default=None, examples=["/api/v1/sessions"])
    errors: list[FieldError] = Field(default_factory=list)


class ProblemError(Exception):
    """A domain error that the API answers as a problem; raised by routes and services."""

    def __init__(
        self,
        status: int,
        title: str,
        *,
        detail: str | None = None,
        kind: str | None = None,
        errors: Sequence[FieldError] = (),
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = list(errors)
        self.extensions = dict(extensions or {})
        """Extension members (RFC 9457 §3.2), e.g. the OAuth2 ``error`` of a refused sign-in."""
        self.headers: dict[str, str] | None = None


def problem_response(
    request: Request,
    status: int,
    title: str,
    *,
    detail: str | None = None,
    kind: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    problem = Problem(
        type=f"{PROBLEM_BASE}{kind}" if kind else "about:blank",
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=list(errors),
    )
    body = problem.model_dump(mode="json", exclude_none=True)
    # Extension members never replace the standard ones.
    body.update({k: v for k, v in (extensions or {}).items() if k not in body})
    return JSONResponse(
        body,
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _malformed_json(error: Any, document: Any) -> FieldError:
    """``body: malformed JSON at line L column C: <reason>``, from the offset FastAPI reports."""
    location = error.get("loc", ())
    position = location[1] if len(location) > 1 and isinstance(location[1], int) else None
    reason = str((error.get("ctx") or {}).get("error") or "not valid JSON")
    if isinstance(document, bytes | bytearray):
        document = bytes(document).decode("utf-8", "replace")
    if isinstance(document, str) and position is not None and 0 <= position <= len(document):
        line = document.count("\n", 0, position) + 1
        column = position - (document.rfind("\n", 0, position) + 1) + 1
        reason = f"malformed JSON at line {line} column {column}: {reason}"
    else:
        reason = f"malformed JSON: {reason}"
    return FieldError(field="body", reason=reason, location="body")


def _validation_errors(exc: RequestValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            errors.append(_malformed_json(error, exc.body))
            continue
        location = list(error.get("loc", ()))
        where = (
            str(location[0])
            if location and location[0] in ("body", "query", "path", "header", "cookie")
            else None
        )
        path = location[1:] if where else location
        named = named_field(error)
        if named is not None and (not path or path[-1] != named):
            path = [*path, named]
        message = str(error.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
        errors.append(
            FieldError(
                field=format_location(path) or (where or "request"), reason=message, location=where
            )
        )
    return errors


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors[:5])
    return problem_response(
        request, 422, "Request validation failed", detail=detail, kind="validation", errors=errors
    )


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        exc.status,
        exc.title,
        detail=exc.detail,
        kind=exc.kind,
        errors=exc.errors,
        headers=exc.headers,
        extensions=exc.extensions,
    )


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, RecordNotFoundError):
        return problem_response(
            request, 404, f"{exc.resource} not found", detail=str(exc), kind="not-found"
        )
    if isinstance(exc, InvalidFieldsError):
        return problem_response(
            request,
            422,
            "Request validation failed",
            detail=str(exc),
            kind="validation",
            errors=[FieldError(field=f, reason=r, location="body") for f, r in exc.errors],
        )
    if isinstance(exc, InvalidFieldError | ConflictError):
        conflict = isinstance(exc, ConflictError)
        return problem_response(
            request,
            409 if conflict else 422,
            "Conflict with an existing record" if conflict else "Request validation failed",
            detail=str(exc),
            kind="conflict" if conflict else "validation",
            errors=[FieldError(field=exc.field, reason=exc.reason, location="body")],
        )
    return problem_response(request, 400, "Bad request", detail=str(exc))


_BODY_NOT_PARSED = "There was an error parsing the body"
"""FastAPI's detail when a body fails to parse for a reason other than a JSON syntax error."""


def _body_parse_reason(cause: BaseException | None) -> str:
    """Why FastAPI could not read a body, in the client's terms (it says only that it could not)."""
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not valid UTF-8"
    if isinstance(cause, RecursionError):
        return "the JSON is nested too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "a number in the JSON has too many digits"
    return "the body cannot be read as JSON"


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _BODY_NOT_PARSED:
        reason = _body_parse_reason(exc.__cause__)
        return problem_response(
            request,
            400,
            "Request body cannot be read",
            detail=reason,
            kind="validation",
            errors=[FieldError(field="body", reason=reason, location="body")],
        )
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "HTTP error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    return problem_response(
        request, exc.status_code, title, detail=detail, headers=dict(exc.headers or {})
    )


_PG_KEY = re.compile(r"Key \((?P<columns>[^)]*)\)=")
"""The columns in PostgreSQL's detail of a unique or foreign-key violation: 'Key (code)=(C-1) ...'."""
_SQLITE_CONSTRAINT = re.compile(r"(?P<kind>UNIQUE|NOT NULL) constraint failed: (?P<columns>.+)$")
"""SQLite's message: 'UNIQUE constraint failed: client.code' (table-qualified, comma-separated)."""
_PG_REASONS = {
    "23505": "is already used by another record",
    "23503": "refers to a record that does not exist",
    "23502": "may not be empty",
}
_SQLITE_REASONS = {"UNIQUE": _PG_REASONS["23505"], "NOT NULL": _PG_REASONS["23502"]}


def integrity_field_errors(error: IntegrityError) -> list[FieldError]:
    """The fields a constraint violation names, when the database says which (PostgreSQL always
    does; SQLite does for unique and not-null columns, not for a foreign key).

    A route checks what it can before writing and names the field itself; this covers the write
    that loses a race with a concurrent one, which only the database sees.
    """
    cause = error.orig
    diagnosis = getattr(cause, "diag", None)
    if diagnosis is not None:
        reason = _PG_REASONS.get(getattr(cause, "sqlstate", "") or "")
        found = _PG_KEY.search(diagnosis.message_detail or "")
        if found is not None:
            columns = [c.strip().strip('"') for c in found.group("columns").split(",")]
        else:
            columns = [diagnosis.column_name] if diagnosis.column_name else []
    else:
        sqlite = _SQLITE_CONSTRAINT.search(str(cause))
        if sqlite is None:
            return []
        reason = _SQLITE_REASONS[sqlite.group("kind")]
        columns = [c.strip().rsplit(".", 1)[-1] for c in sqlite.group("columns").split(",")]
    if reason is None:
        return []
    return [FieldError(field=column, reason=reason, location="body") for column in columns]


async def _on_integrity_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IntegrityError)
    logger.info("integrity error on %s: %s", request.url.path, type(exc).__name__)
    errors = integrity_field_errors(exc)
    return problem_response(
        request,
        409,
        "Conflict with an existing record",
        detail="; ".join(f"{e.field}: {e.reason}" for e in errors)
        or "the change conflicts with existing data (a duplicate or a broken reference)",
        kind="conflict",
        errors=errors,
    )


async def _on_site_policy_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SitePolicyError)
    logger.error("site policy unusable on %s: %s", request.url.path, exc)
    reason = f"{exc}; no plan is approved until the site policy file is fixed"
    return problem_response(
        request,
        503,
        "Site policy unavailable",
        detail=reason,
        kind="site-policy",
        errors=[FieldError(field="site_policy_path", reason=reason, location="settings")],
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "Internal server error", kind="internal")


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description, "content": {PROBLEM_JSON: {}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem("No valid credentials"),
    403: _problem("The role does not grant the route's scopes"),
    404: _problem("No such record"),
    409: _problem("Conflicts with an existing record or with the record's state"),
    422: _problem("Validation failed: the errors name each field and the reason"),
}

SITE_POLICY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: _problem(
        "The configured site policy cannot be read; no plan is approved until it is fixed"
    ),
}
"""For the routes that approve plans, the only ones that read the site policy."""


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(IntegrityError, _on_integrity_error)
    app.add_exception_handler(SitePolicyError, _on_site_policy_error)
    app.add_exception_handler(Exception, _on_unexpected)
