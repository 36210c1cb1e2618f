"""Field types shared by every input model, so bad input is refused at the edge, never by the database.

Each type exists because a value that pydantic would accept can still break a store or an export: a
NUL character in text (PostgreSQL refuses it), a lone surrogate (it cannot be encoded as UTF-8), a
control character or a Unicode line separator (FHIR strings and the CSV and HTML views have no place
for them), text that is only whitespace (an empty value in disguise, which FHIR refuses), a naive
timestamp (ambiguous), a timestamp whose UTC form overflows, or an id too large for a 32-bit key.
Refusing them here turns a would-be server error, or an export that fails long after the write, into
a 422 naming the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

MAX_DB_INT = 2_147_483_647

_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""NUL, C0 and C1 controls other than tab, line feed and carriage return, DEL, the Unicode line and
paragraph separators, and lone surrogates (which pydantic already refuses for model fields)."""

_LINE_CONTROLS = re.compile("[\t\n\r]")


def _check_text(value: str, *, single_line: bool, allow_blank: bool = False) -> str:
    if "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    found = _CONTROLS.search(value) or (_LINE_CONTROLS.search(value) if single_line else None)
    if found is not None:
        allowed = "a single line without" if single_line else "text without"
        extra = "" if single_line else " (tab and line breaks are allowed)"
        raise ValueError(
            f"must be {allowed} control characters or line separators{extra};"
            f" found U+{ord(found.group()):04X}"
        )
    if value and value.isspace() and not allow_blank:
        raise ValueError("may not be only whitespace")
    return value


def _long_text(value: str) -> str:
    """Multi-line text: tab, line feed and carriage return are the only controls allowed."""
    return _check_text(value, single_line=False)


def _short_text(value: str) -> str:
    """Single-line text (names, labels, serial numbers): no controls at all."""
    return _check_text(value, single_line=True)


def _search_text(value: str) -> str:
    """What is typed into a search box: one line, possibly blank (a blank search finds everything)."""
    return _check_text(value, single_line=True, allow_blank=True)


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as error:
        raise ValueError("timestamp is outside the representable range") from error


Text = Annotated[str, AfterValidator(_long_text)]
"""Any free text without a length bound of its own (the caller bounds it)."""
SingleLine = AfterValidator(_short_text)
"""The rules of ``ShortText`` for a single-line type that needs another length bound."""
ShortText = Annotated[str, Field(min_length=1, max_length=200), SingleLine]
"""A required single-line value: not empty, not only whitespace, no control characters."""
LongText = Annotated[str, Field(max_length=20_000), AfterValidator(_long_text)]
"""Multi-line text; when not empty it must hold more than whitespace."""
SearchText = Annotated[str, AfterValidator(_search_text)]
"""A search term from a query string; the parameter declares its own length bound."""
Code = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]
UTCTimestamp = Annotated[AwareDatetime, AfterValidator(_to_utc)]
RecordId = Annotated[int, Field(ge=1, le=MAX_DB_INT)]
