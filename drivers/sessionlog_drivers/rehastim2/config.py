"""Settings of the RehaStim 2 emulator: the device's fixed timings, the faults to inject, and the one
parser that turns a ``rehastim2://`` URL query into them, so a mistyped option is an error rather
than a fault that silently never fires. How option values are spelled is shared with every emulator
(``emulation.options``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sessionlog_drivers.emulation.options import (
    boolean,
    channel_set,
    finite_float,
    group_options,
    query_values,
)
from sessionlog_drivers.rehastim2.protocol import CHANNEL_COUNT

PROTOCOL_VERSION = 1
"""The version byte the emulated device sends in Init. The spec names no number; see the doc."""


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Fixed behaviour of one emulated RehaStim 2; the defaults are the spec's values (§2.3)."""

    protocol_version: int = PROTOCOL_VERSION
    init_repetition_ms: int = 500
    watchdog_timeout_ms: int = 1200
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.protocol_version <= 255:
            raise ValueError("protocol_version is one byte")
        if self.init_repetition_ms <= 0 or self.watchdog_timeout_ms <= 0:
            raise ValueError("init_repetition_ms and watchdog_timeout_ms must be positive")


@dataclass(slots=True)
class FaultConfig:
    """Faults to inject; a live emulator reads these on every step, so they may change at run time.

    ``emergency_switch``, ``electrode_error`` (1-based channels) and ``module_error`` are conditions
    of the hardware: while one holds and the device is stimulating an affected channel, it stops and
    sends StimulationError. Rates are probabilities per packet the device sends.
    """

    unplug_after_s: float | None = None
    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    busy_next: int = 0
    emergency_switch: bool = False
    electrode_error: frozenset[int] = frozenset()
    module_error: bool = False

    def __post_init__(self) -> None:
        for name in ("corrupt_rate", "drop_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {rate}")
        if self.latency_ms < 0 or self.busy_next < 0:
            raise ValueError("latency_ms and busy_next must not be negative")
        if self.unplug_after_s is not None and self.unplug_after_s < 0:
            raise ValueError("unplug_after_s must not be negative")
        bad = sorted(c for c in self.electrode_error if not 1 <= c <= CHANNEL_COUNT)
        if bad:
            raise ValueError(
                f"electrode_error names channels {bad}; channels are 1-{CHANNEL_COUNT}"
            )


# option name -> (settings group, field name, converter)
_OPTIONS: dict[str, tuple[str, str, Callable[[str], object]]] = {
    "version": ("device", "protocol_version", int),
    "init_repetition_ms": ("device", "init_repetition_ms", int),
    "watchdog_ms": ("device", "watchdog_timeout_ms", int),
    "seed": ("device", "seed", int),
    "unplug_after_s": ("faults", "unplug_after_s", finite_float),
    "corrupt_rate": ("faults", "corrupt_rate", finite_float),
    "drop_rate": ("faults", "drop_rate", finite_float),
    "latency_ms": ("faults", "latency_ms", finite_float),
    "busy_next": ("faults", "busy_next", int),
    "emergency_switch": ("faults", "emergency_switch", boolean),
    "electrode_error": ("faults", "electrode_error", channel_set),
    "module_error": ("faults", "module_error", boolean),
}

OPTION_NAMES = frozenset(_OPTIONS)
"""Every option a ``rehastim2://`` query string accepts."""


def options_to_settings(options: Mapping[str, str]) -> tuple[EmulatorConfig, FaultConfig]:
    """Validated settings from named options; an unknown name or a bad value is a ValueError."""
    groups = group_options(options, _OPTIONS, ("device", "faults"))
    config = EmulatorConfig(**groups["device"])  # type: ignore[arg-type]
    faults = FaultConfig(**groups["faults"])  # type: ignore[arg-type]
    return config, faults


def query_to_settings(query: str) -> tuple[EmulatorConfig, FaultConfig]:
    """Settings from a URL query such as ``seed=1&latency_ms=20`` (the last value of a name wins)."""
    return options_to_settings(query_values(query))
