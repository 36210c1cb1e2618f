"""Parsing of the options that configure an emulator, shared so every emulated device reads its
URL query the same way: the last value of a repeated name wins, an unknown name or a bad value is a
ValueError naming the option (a mistyped fault must not make a fault-injection test pass silently),
and booleans, finite numbers and channel lists are spelled alike in every scheme.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar
from urllib.parse import parse_qs

ValueT = TypeVar("ValueT")

OptionTable = Mapping[str, tuple[str, str, Callable[[ValueT], object]]]
"""Option name -> (settings group, field name, converter from the option's value)."""


def query_values(query: str) -> dict[str, str]:
    """Options from a URL query such as `seed=1&latency_ms=20`; the last value of a name wins."""
    parsed = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    return {name: values[-1] for name, values in parsed.items()}


def group_options(
    options: Mapping[str, ValueT], table: OptionTable[ValueT], groups: Iterable[str]
) -> dict[str, dict[str, object]]:
    """Converted values by settings group and field, ready to build each group's dataclass.

    Nothing is guessed: an unknown option is refused rather than ignored, and a value the converter
    rejects is reported with the option's name so the caller can tell which one was wrong.
    """
    grouped: dict[str, dict[str, object]] = {group: {} for group in groups}
    for name, raw in options.items():
        if name not in table:
            known = ", ".join(sorted(table))
            raise ValueError(f"unknown emulator option {name!r} (known: {known})")
        group, field_name, convert = table[name]
        try:
            grouped[group][field_name] = convert(raw)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"bad value for emulator option {name!r}: {raw!r}") from exc
    return grouped


def finite_float(text: str) -> float:
    """A number that can schedule an event: infinity or NaN would stall or never fire it."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def boolean(text: str) -> bool:
    """A switch spelled as a URL or command line would: 1/0, true/false, yes/no, on/off."""
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not a boolean")


def comma_items(text: str) -> list[str]:
    """The non-empty items of a comma-separated list, so `1, 2,` means the same as `1,2`."""
    return [item.strip() for item in text.split(",") if item.strip()]


def channel_set(text: str) -> frozenset[int]:
    """Channel numbers from a comma-separated list; their range is the device's settings' to check."""
    return frozenset(int(item) for item in comma_items(text))
