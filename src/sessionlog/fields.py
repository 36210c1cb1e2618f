"""Field types shared by every input model, so bad input is refused at the edge, never by the database.

Each type exists because a value that pydantic would accept can still break a store: a NUL character
in text (PostgreSQL refuses it), a naive timestamp (ambiguous), a timestamp whose UTC form overflows, or
an id too large for a 32-bit key. Refusing them here turns a would-be server error into a 422.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

MAX_DB_INT = 2_147_483_647


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as error:
        raise ValueError("timestamp is outside the representable range") from error


Text = Annotated[str, AfterValidator(_no_nul)]
ShortText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
LongText = Annotated[str, Field(max_length=20_000), AfterValidator(_no_nul)]
Code = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]
UTCTimestamp = Annotated[AwareDatetime, AfterValidator(_to_utc)]
RecordId = Annotated[int, Field(ge=1, le=MAX_DB_INT)]
