"""The collector each limits layer writes its findings into, and the wording of those findings.

Every layer compares values with bounds the same way and words the result the same way, so the
comparison rules live here once: a value equal to a bound is within it, and a value that cannot be
compared (NaN) is treated as outside, never as inside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sessionlog.safety.plan import UA_PER_MA, Modality
from sessionlog.safety.verdict import (
    Layer,
    SafetyWarning,
    Scalar,
    Violation,
    ViolationCode,
    WarningCode,
)


def format_current(value_ua: float) -> str:
    """A current as a practitioner reads it, µA beside mA so that a 1000× error stands out."""
    if abs(value_ua) < UA_PER_MA:
        return f"{value_ua:.6g} µA"
    return f"{value_ua / UA_PER_MA:.6g} mA ({value_ua:.10g} µA)"


def modality_name(modality: Modality) -> str:
    """How messages name a modality."""
    return "EMS" if modality is Modality.EMS else "microcurrent"


def unit_formatter(unit: str) -> Callable[[float], str]:
    """Formatter for a plain quantity in ``unit``."""

    def _format(value: float) -> str:
        return f"{value:.6g} {unit}"

    return _format


def _distinct(value: float, bound: float, fmt: Callable[[float], str]) -> tuple[str, str]:
    """Format value and bound, with full precision if rounding would make them read as equal."""
    value_text, bound_text = fmt(value), fmt(bound)
    if value_text == bound_text:
        return f"{value!r} {bound_text.split(' ', 1)[1]}", bound_text
    return value_text, bound_text


AmplitudeChecks = Sequence[int] | None
"""Which checks a layer runs: ``None`` for all of them; for a live change, the indexes (ascending)
of the channels whose amplitude-dependent checks run, every other check being left out. A check
that reads no amplitude and no dose figure must therefore never raise a warning: a live change
would not reproduce it (``LimitsEngine.approve_change``). A check that does read one must be a bound
on one side (a dose figure only grows with the amplitude) or the device's amplitude step: the
amplitude ranges of ``sessionlog.safety.amplitude_range`` are searched for on that shape."""


def checked_channels(channel_count: int, amplitude_checks_for: AmplitudeChecks) -> Sequence[int]:
    """The channel indexes a layer visits, in plan order."""
    return range(channel_count) if amplitude_checks_for is None else amplitude_checks_for


def is_above(value: float, bound: float) -> bool:
    """True when value is beyond an upper bound; NaN counts as beyond (fail-safe)."""
    return not value <= bound


def is_below(value: float, bound: float) -> bool:
    """True when value is beyond a lower bound; NaN counts as beyond (fail-safe)."""
    return not value >= bound


class Findings:
    """Violations and warnings found by one layer, worded with that layer's name."""

    def __init__(self, layer: Layer, label: str) -> None:
        self.layer = layer
        self.label = label
        self.violations: list[Violation] = []
        self.warnings: list[SafetyWarning] = []

    def violation(
        self,
        code: ViolationCode,
        field: str,
        value: Scalar,
        bound: Scalar | None,
        message: str,
        source: str | None = None,
    ) -> None:
        self.violations.append(
            Violation(
                layer=self.layer,
                code=code,
                field=field,
                value=value,
                bound=bound,
                message=message,
                source=source,
            )
        )

    def check_max(
        self,
        code: ViolationCode,
        field: str,
        subject: str,
        value: float,
        bound: float,
        fmt: Callable[[float], str],
        *,
        source: str | None = None,
        note: str = "",
    ) -> bool:
        """Record a violation if ``value`` exceeds ``bound``; return whether it did."""
        if not is_above(value, bound):
            return False
        value_text, bound_text = _distinct(value, bound, fmt)
        message = f"{subject} {value_text} exceeds the {self.label} maximum of {bound_text}."
        self.violation(code, field, value, bound, f"{message} {note}".strip(), source)
        return True

    def check_min(
        self,
        code: ViolationCode,
        field: str,
        subject: str,
        value: float,
        bound: float,
        fmt: Callable[[float], str],
        *,
        source: str | None = None,
    ) -> bool:
        """Record a violation if ``value`` is below ``bound``; return whether it was."""
        if not is_below(value, bound):
            return False
        value_text, bound_text = _distinct(value, bound, fmt)
        message = f"{subject} {value_text} is below the {self.label} minimum of {bound_text}."
        self.violation(code, field, value, bound, message, source)
        return True

    def warn_above(
        self,
        code: WarningCode,
        field: str,
        subject: str,
        value: float,
        threshold: float,
        fmt: Callable[[float], str],
        *,
        source: str | None = None,
    ) -> None:
        """Record an (unacknowledged) warning if ``value`` exceeds ``threshold``."""
        if not is_above(value, threshold):
            return
        value_text, threshold_text = _distinct(value, threshold, fmt)
        self.warnings.append(
            SafetyWarning(
                layer=self.layer,
                code=code,
                field=field,
                value=value,
                threshold=threshold,
                message=(
                    f"{subject} {value_text} is above {threshold_text} ({self.label}): "
                    "an explicit acknowledgement is required."
                ),
                source=source,
                acknowledged=False,
            )
        )
