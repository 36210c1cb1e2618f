"""Field types shared by every input model, so bad input is refused at the edge, never by the database.

Each type exists because a value that pydantic would accept can still break a store or an export: a
NUL character in text (PostgreSQL refuses it), a lone surrogate (it cannot be encoded as UTF-8), a
control character or a Unicode line separator (FHIR strings and the CSV and HTML views have no place
for them), text that is only whitespace (an empty value in disguise, which FHIR refuses), a naive
timestamp (ambiguous), a number given as a timestamp (seconds or milliseconds since when, in which
zone?), a timestamp outside the years a treatment record can hold, or an id too large for a 32-bit
key. Refusing them here turns a would-be server error, or an export that fails long after the write,
into a 422 naming the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

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


EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest instant any timestamp may name (inclusive): no session logged by a stimulator, nor
any filter over them, reaches back before the Unix epoch, and tools that count seconds from it (the
exports' readers among them) handle nothing earlier reliably."""
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=UTC)
"""The first instant no timestamp may name (exclusive): far enough for any range an analyst asks for,
near enough that a typo such as year 9999 is refused instead of stored."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far past the server's clock a time that already happened may lie: the clocks of a station and
the server differ a little, never by more."""

_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
"""The start of an ISO 8601 date-time; pydantic alone would also read a number (or a numeric
string) as seconds since 1970 in UTC, which is a guess at both unit and zone."""
_TIMESTAMP_FORM = "an ISO 8601 date-time with a time zone, e.g. 2026-11-20T09:00:00+01:00"


def _iso_date_time(value: Any) -> Any:
    """Refuse anything but an ISO 8601 date-time text (or a datetime object, from Python callers)."""
    if isinstance(value, bool | int | float | Decimal):
        raise ValueError(f"must be {_TIMESTAMP_FORM}, not a number")
    if isinstance(value, str) and not _ISO_DATE_TIME.match(value):
        raise ValueError(f"must be {_TIMESTAMP_FORM}")
    return value


def _format_bound(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_utc(value: datetime) -> datetime:
    bounds = (
        f"must be from {_format_bound(EARLIEST_TIMESTAMP)} up to (not including) "
        f"{_format_bound(LATEST_TIMESTAMP)}"
    )
    try:
        utc = value.astimezone(UTC)
    except OverflowError as error:
        raise ValueError(bounds) from error
    if not EARLIEST_TIMESTAMP <= utc < LATEST_TIMESTAMP:
        raise ValueError(bounds)
    return utc


def _not_in_future(value: datetime) -> datetime:
    now = datetime.now(UTC)
    if value > now + CLOCK_SKEW:
        minutes = int(CLOCK_SKEW.total_seconds() // 60)
        raise ValueError(
            f"is in the future (the server's time is {_format_bound(now)}; up to {minutes} "
            "minutes of clock difference are allowed): only what already happened is recorded"
        )
    return value


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
UTCTimestamp = Annotated[AwareDatetime, BeforeValidator(_iso_date_time), AfterValidator(_to_utc)]
"""An instant: ISO 8601 text with a zone (a number or a naive date-time is refused), converted to
UTC, from ``EARLIEST_TIMESTAMP`` up to (not including) ``LATEST_TIMESTAMP``."""
PastTimestamp = Annotated[UTCTimestamp, AfterValidator(_not_in_future)]
"""An instant that already happened (a recorded session's start and end, an event): a
``UTCTimestamp`` no later than the server's time plus ``CLOCK_SKEW``."""
RecordId = Annotated[int, Field(ge=1, le=MAX_DB_INT)]
