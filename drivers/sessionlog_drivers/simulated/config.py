"""Settings of the simulated reference stimulator: what hardware it pretends to be, which faults it
injects, and the one parser that turns `sim://` URL query strings and command-line options into
them, so the in-process port and the out-of-process server accept exactly the same options. How
option values are spelled is shared with every emulator (`emulation.options`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sessionlog_drivers.emulation.options import (
    boolean,
    channel_set,
    comma_items,
    finite_float,
    group_options,
    query_values,
)
from sessionlog_drivers.simulated.messages import MAX_CHANNELS, ErrorCode, Modality

OptionValue = str | int | float | bool | Iterable[str | int]
"""What a caller of `options_to_settings` may pass for one option (strings as in a URL)."""


@dataclass(frozen=True, slots=True)
class HardwareLimits:
    """What the output stage can physically do; the device refuses anything beyond it.

    The EMS ceiling matches the 120 mA standard profile rather than a wider device range, and the
    microcurrent ceiling is 1000 µA; pulse width and frequency bounds cover both modalities.
    """

    ems_max_amplitude_ua: int = 120_000
    microcurrent_max_amplitude_ua: int = 1_000
    pulse_width_min_us: int = 20
    pulse_width_max_us: int = 1_000_000
    frequency_min_millihz: int = 100
    frequency_max_millihz: int = 1_000_000

    def __post_init__(self) -> None:
        if min(self.ems_max_amplitude_ua, self.microcurrent_max_amplitude_ua) < 0:
            raise ValueError("amplitude limits must not be negative")
        if not 0 < self.pulse_width_min_us <= self.pulse_width_max_us:
            raise ValueError("pulse width range must be positive and ordered")
        if not 0 < self.frequency_min_millihz <= self.frequency_max_millihz:
            raise ValueError("frequency range must be positive and ordered")

    def max_amplitude_ua(self, modality: Modality) -> int:
        if modality is Modality.EMS:
            return self.ems_max_amplitude_ua
        return self.microcurrent_max_amplitude_ua


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Identity and fixed behaviour of one emulated device."""

    channel_count: int = 2
    modalities: frozenset[Modality] = frozenset(Modality)
    limits: HardwareLimits = field(default_factory=HardwareLimits)
    watchdog_timeout_ms: int = 1000
    telemetry_rate_hz: float = 20.0
    seed: int = 0
    model: str = "SIM-STIM"
    firmware_version: str = "1.0.0"
    serial_number: str = "SIM-000001"

    def __post_init__(self) -> None:
        if not 1 <= self.channel_count <= MAX_CHANNELS:
            raise ValueError(f"channel_count must be 1..{MAX_CHANNELS}, got {self.channel_count}")
        if not self.modalities:
            raise ValueError("a device supports at least one modality")
        if self.watchdog_timeout_ms <= 0:
            raise ValueError("watchdog_timeout_ms must be positive")
        if not 0.1 <= self.telemetry_rate_hz <= 1000:
            raise ValueError("telemetry_rate_hz must be in [0.1, 1000]")

    @property
    def telemetry_interval_s(self) -> float:
        return 1.0 / self.telemetry_rate_hz


@dataclass(slots=True)
class FaultConfig:
    """Faults to inject; a live emulator reads these fields on every step, so they may be changed
    at run time (see `StimulatorEmulator.faults`). Rates are probabilities per frame.
    """

    unplug_after_s: float | None = None
    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    nak_next: int = 0
    nak_rate: float = 0.0
    nak_code: ErrorCode = ErrorCode.BUSY
    electrode_off: frozenset[int] = frozenset()
    device_error: bool = False

    def __post_init__(self) -> None:
        for name in ("corrupt_rate", "drop_rate", "nak_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {rate}")
        if self.latency_ms < 0 or self.nak_next < 0:
            raise ValueError("latency_ms and nak_next must not be negative")
        if self.unplug_after_s is not None and self.unplug_after_s < 0:
            raise ValueError("unplug_after_s must not be negative")


def _text(value: OptionValue) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return ",".join(str(item) for item in value)


def _int(value: OptionValue) -> int:
    return int(_text(value))


def _float(value: OptionValue) -> float:
    return finite_float(_text(value))


def _bool(value: OptionValue) -> bool:
    return boolean(_text(value))


def _millihz(value: OptionValue) -> int:
    return round(_float(value) * 1000)


def _modalities(value: OptionValue) -> frozenset[Modality]:
    result = set()
    for item in comma_items(_text(value)):
        result.add(Modality(int(item)) if item.isdigit() else Modality[item.upper()])
    return frozenset(result)


def _channels(value: OptionValue) -> frozenset[int]:
    return channel_set(_text(value))


def _error_code(value: OptionValue) -> ErrorCode:
    text = _text(value).strip()
    return ErrorCode(int(text)) if text.isdigit() else ErrorCode[text.upper()]


# option name -> (settings group, field name, converter)
_OPTIONS: dict[str, tuple[str, str, Callable[[OptionValue], object]]] = {
    "channels": ("device", "channel_count", _int),
    "modalities": ("device", "modalities", _modalities),
    "watchdog_ms": ("device", "watchdog_timeout_ms", _int),
    "telemetry_hz": ("device", "telemetry_rate_hz", _float),
    "seed": ("device", "seed", _int),
    "model": ("device", "model", _text),
    "firmware_version": ("device", "firmware_version", _text),
    "serial_number": ("device", "serial_number", _text),
    "ems_max_ua": ("limits", "ems_max_amplitude_ua", _int),
    "microcurrent_max_ua": ("limits", "microcurrent_max_amplitude_ua", _int),
    "pulse_width_min_us": ("limits", "pulse_width_min_us", _int),
    "pulse_width_max_us": ("limits", "pulse_width_max_us", _int),
    "frequency_min_hz": ("limits", "frequency_min_millihz", _millihz),
    "frequency_max_hz": ("limits", "frequency_max_millihz", _millihz),
    "unplug_after_s": ("faults", "unplug_after_s", _float),
    "corrupt_rate": ("faults", "corrupt_rate", _float),
    "drop_rate": ("faults", "drop_rate", _float),
    "latency_ms": ("faults", "latency_ms", _float),
    "nak_next": ("faults", "nak_next", _int),
    "nak_rate": ("faults", "nak_rate", _float),
    "nak_code": ("faults", "nak_code", _error_code),
    "electrode_off": ("faults", "electrode_off", _channels),
    "device_error": ("faults", "device_error", _bool),
}

OPTION_NAMES = frozenset(_OPTIONS)
"""Every option accepted in a `sim://` query string or by the out-of-process server."""


def options_to_settings(options: Mapping[str, OptionValue]) -> tuple[EmulatorConfig, FaultConfig]:
    """Build validated settings from named options; an unknown name or bad value is a ValueError.

    Nothing is guessed: an unknown option is refused rather than ignored, so a mistyped fault name
    cannot make a fault-injection test pass silently.
    """
    groups = group_options(options, _OPTIONS, ("device", "limits", "faults"))
    limits = HardwareLimits(**groups["limits"])  # type: ignore[arg-type]
    config = EmulatorConfig(limits=limits, **groups["device"])  # type: ignore[arg-type]
    faults = FaultConfig(**groups["faults"])  # type: ignore[arg-type]
    return config, faults


def query_to_settings(query: str) -> tuple[EmulatorConfig, FaultConfig]:
    """Settings from a URL query such as `channels=2&seed=1&corrupt_rate=0.01` (last value wins)."""
    return options_to_settings(query_values(query))
