"""Validation errors as ``field: reason`` pairs, worded as the API's problem documents word them.

Shared by the API's problem documents (``sessionlog.api.problems``) and the command line, which
must not import the web stack: a file refused by ``sessionlog limits check`` and a body refused by
``POST /limits/check`` name the field and the reason in the same words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

_FIELD_NAME = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
"""A snake_case name with at least one underscore, as the fields a validator's message names are
(``amplitude_ma``, ``on_time_s``); plain words of the message never match."""


class FieldValueError(ValueError):
    """A validator's refusal that says which field it is about.

    A check across several fields of an object (the unit of a current, a duty cycle) fails at the
    object's location, though one field is at fault; raising this names that field, so a problem
    document or a command-line error points at the value to change without guessing it from the
    message (``named_field`` reads it first)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def format_location(location: Sequence[int | str]) -> str:
    """Render a pydantic location as ``a.b[0].c``."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def named_field(error: Any) -> str | None:
    """The field a model-level validator's error is about, or None to keep its location.

    A model validator (the unit check of a channel's current) fails at the model's location,
    ``channels[0]``, though its message is about one of the model's fields; naming that field
    tells the reader which value to change. It is the exception's ``field`` attribute when there
    is one, else the first name the message mentions that the input holds (or that starts a name
    it holds), else the name that opens the message.
    """
    if error.get("type") != "value_error":
        return None
    cause = (error.get("ctx") or {}).get("error")
    field = getattr(cause, "field", None)
    if isinstance(field, str) and field:
        return field
    sent = error.get("input")
    if not isinstance(sent, dict):
        return None
    message = str(cause) if cause is not None else str(error.get("msg", ""))
    mentioned: list[str] = _FIELD_NAME.findall(message)
    for name in mentioned:
        if name in sent:
            return name
    for name in mentioned:
        for key in sent:
            if isinstance(key, str) and key.startswith(f"{name}_"):
                return key
    if mentioned and message.startswith(mentioned[0]):
        return mentioned[0]
    return None


def field_errors(error: ValidationError) -> list[tuple[str, str]]:
    """Each error as (field, reason); the field is empty when the whole input was refused."""
    found: list[tuple[str, str]] = []
    for detail in error.errors(include_url=False):
        if detail.get("type") == "json_invalid":
            reason = (detail.get("ctx") or {}).get("error") or "not valid JSON"
            found.append(("", f"malformed JSON: {reason}"))
            continue
        path = list(detail.get("loc", ()))
        named = named_field(detail)
        if named is not None and (not path or path[-1] != named):
            path = [*path, named]
        reason = str(detail.get("msg", "invalid value")).removeprefix("Value error, ")
        found.append((format_location(path), reason))
    return found
