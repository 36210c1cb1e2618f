"""Cursor pagination for every list route: an opaque cursor, a bounded page size, a stable order."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from sessionlog.api.problems import FieldError, ProblemError
from sessionlog.fields import MAX_DB_INT
from sessionlog.store.repository import Page

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageParams(BaseModel):
    after_id: int | None
    limit: int


class ListResponse(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; absent on the last page."
    )


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    def bad(reason: str) -> ProblemError:
        return ProblemError(
            422,
            "Request validation failed",
            detail=f"cursor: {reason}",
            kind="validation",
            errors=[FieldError(field="cursor", reason=reason, location="query")],
        )

    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as error:
        raise bad("not a cursor returned by this API") from error
    after = data.get("after") if isinstance(data, dict) else None
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_DB_INT:
        raise bad("not a cursor returned by this API")
    return after


async def page_params(
    cursor: Annotated[
        str | None, Query(max_length=200, description="Opaque cursor from `next_cursor`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> PageParams:
    return PageParams(after_id=decode_cursor(cursor) if cursor else None, limit=limit)


PageDep = Annotated[PageParams, Depends(page_params)]


def to_list_response(page: Page[T], items: list[T]) -> dict[str, object]:
    next_cursor = encode_cursor(page.last_id) if page.has_more and page.last_id else None
    return {"items": items, "next_cursor": next_cursor}
