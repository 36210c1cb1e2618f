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
class TimingRange:
    """Pulse widths and pulse rates one output stage accepts, bounds included."""

    pulse_width_min_us: int
    pulse_width_max_us: int
    frequency_min_millihz: int
    frequency_max_millihz: int

    @property
    def empty(self) -> bool:
        """True when no pulse width or no frequency is left (a misconfigured device)."""
        return (
            self.pulse_width_min_us > self.pulse_width_max_us
            or self.frequency_min_millihz > self.frequency_max_millihz
        )

    def admits(self, pulse_width_us: int, frequency_millihz: int) -> bool:
        """True when both values lie in the range (the device refuses rather than clamps)."""
        return (
            self.pulse_width_min_us <= pulse_width_us <= self.pulse_width_max_us
            and self.frequency_min_millihz <= frequency_millihz <= self.frequency_max_millihz
        )


@dataclass(frozen=True, slots=True)
class HardwareLimits:
    """What the output stages can physically do; the device refuses anything beyond it.

    Two layers, as in a real dual-modality stimulator. The pulse generator shared by both modalities
    has a device-wide timing range (`pulse_width_*`, `frequency_*`): the µA microcurrent stage can
    use all of it. The mA EMS stage cannot: a real EMS output stage neither sustains millisecond
    pulses at tens of mA nor runs at the sub-hertz or kilohertz rates of microcurrent, so it narrows
    the timing range (`ems_pulse_width_max_us`, `ems_frequency_*`) and caps the rms output current
    (`ems_max_rms_ua`, in the spirit of IEC 60601-2-10's output limits). A driver bug that sends
    5000 µs pulses at 120 mA then meets a NAK, not an ACK.

    Every EMS bound is deliberately looser than the host's standard EMS profile (20–600 µs,
    1–150 Hz, ≤ 50 mA rms, `sessionlog.safety.profiles`): the device is the last line behind the
    host's limits engine, not a second copy of it, so every plan the host approves is accepted here.
    The EMS amplitude ceiling equals the 120 mA standard profile, and the microcurrent ceiling is
    1000 µA. IDENTITY reports, per modality, the amplitude ceiling and, device-wide, the union of
    the supported modalities' timing ranges (`identity_timing`).
    """

    ems_max_amplitude_ua: int = 120_000
    microcurrent_max_amplitude_ua: int = 1_000
    pulse_width_min_us: int = 20
    pulse_width_max_us: int = 1_000_000
    frequency_min_millihz: int = 100
    frequency_max_millihz: int = 1_000_000
    ems_pulse_width_max_us: int = 1_000
    ems_frequency_min_millihz: int = 500
    ems_frequency_max_millihz: int = 250_000
    ems_max_rms_ua: int = 80_000

    def __post_init__(self) -> None:
        if min(self.ems_max_amplitude_ua, self.microcurrent_max_amplitude_ua) < 0:
            raise ValueError("amplitude limits must not be negative")
        if not 0 < self.pulse_width_min_us <= self.pulse_width_max_us:
            raise ValueError("pulse width range must be positive and ordered")
        if not 0 < self.frequency_min_millihz <= self.frequency_max_millihz:
            raise ValueError("frequency range must be positive and ordered")
        if self.ems_pulse_width_max_us <= 0:
            raise ValueError("the EMS pulse width ceiling must be positive")
        if not 0 < self.ems_frequency_min_millihz <= self.ems_frequency_max_millihz:
            raise ValueError("the EMS frequency range must be positive and ordered")
        if self.ems_max_rms_ua <= 0:
            raise ValueError("the EMS rms current ceiling must be positive")

    def max_amplitude_ua(self, modality: Modality) -> int:
        if modality is Modality.EMS:
            return self.ems_max_amplitude_ua
        return self.microcurrent_max_amplitude_ua

    def timing(self, modality: Modality) -> TimingRange:
        """The pulse widths and rates `modality`'s output stage accepts: the device-wide range,
        narrowed for EMS by its own stage limits."""
        if modality is Modality.EMS:
            return TimingRange(
                pulse_width_min_us=self.pulse_width_min_us,
                pulse_width_max_us=min(self.pulse_width_max_us, self.ems_pulse_width_max_us),
                frequency_min_millihz=max(
                    self.frequency_min_millihz, self.ems_frequency_min_millihz
                ),
                frequency_max_millihz=min(
                    self.frequency_max_millihz, self.ems_frequency_max_millihz
                ),
            )
        return TimingRange(
            pulse_width_min_us=self.pulse_width_min_us,
            pulse_width_max_us=self.pulse_width_max_us,
            frequency_min_millihz=self.frequency_min_millihz,
            frequency_max_millihz=self.frequency_max_millihz,
        )

    def identity_timing(self, modalities: Iterable[Modality]) -> TimingRange:
        """The device-wide range IDENTITY reports: the union (hull) of the supported modalities'.

        IDENTITY has one timing range for the whole device, so a host sees the widest range any
        modality accepts; the per-modality stage limits are looser than the host's standard
        profiles, so a plan the host approves within that range is never refused for its timing.
        """
        ranges = [self.timing(m) for m in modalities if not self.timing(m).empty]
        if not ranges:
            raise ValueError("no supported modality has a pulse width and frequency left")
        return TimingRange(
            pulse_width_min_us=min(r.pulse_width_min_us for r in ranges),
            pulse_width_max_us=max(r.pulse_width_max_us for r in ranges),
            frequency_min_millihz=min(r.frequency_min_millihz for r in ranges),
            frequency_max_millihz=max(r.frequency_max_millihz for r in ranges),
        )

    def rms_admits(
        self,
        modality: Modality,
        amplitude_ua: int,
        *,
        phase_count: int,
        pulse_width_us: int,
        frequency_millihz: int,
    ) -> bool:
        """True when the rms output current stays within the modality's ceiling.

        I_rms = I_peak × sqrt(phases × pulse width × frequency), the duty formula of DESIGN.md §3
        and of the host's dose figures, compared squared in integers (µs × mHz = 10⁻⁹ of a second
        per second) so the bound is exact. Microcurrent has no rms ceiling: its peak is below 1 mA.
        """
        if modality is not Modality.EMS:
            return True
        duty_e9 = phase_count * pulse_width_us * frequency_millihz
        return amplitude_ua * amplitude_ua * duty_e9 <= self.ems_max_rms_ua**2 * 1_000_000_000


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
        unusable = sorted(m.name for m in self.modalities if self.limits.timing(m).empty)
        if unusable:
            # A supported modality that no CONFIGURE could ever pass is a configuration mistake.
            raise ValueError(f"the timing limits leave no pulse width or frequency for {unusable}")
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
    "ems_pulse_width_max_us": ("limits", "ems_pulse_width_max_us", _int),
    "ems_frequency_min_hz": ("limits", "ems_frequency_min_millihz", _millihz),
    "ems_frequency_max_hz": ("limits", "ems_frequency_max_millihz", _millihz),
    "ems_max_rms_ua": ("limits", "ems_max_rms_ua", _int),
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
