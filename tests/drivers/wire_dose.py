"""An oracle for what the simulated stimulator was told to deliver, written apart from the engine.

The wire property test must not trust the limits engine to judge the engine: it replays the
emulator's log of decoded commands into each channel's parameters and checks them here with the
formulas of DESIGN.md §3 written out again in plain SI arithmetic. Only the limit *values* come
from the project (the standard profiles, the device's reported capabilities, the generated site
policy and prescription), since those values are the specification; no dose function of
``sessionlog.safety.dose`` is called.

Floats are compared with a relative tolerance of 1e-9, and only where the engine itself compares
floats (frequencies and dose figures): this oracle rounds differently from the engine, and a value
exactly on a bound must not be reported as beyond it. Integer quantities are compared exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from sessionlog.safety import (
    DeviceCapabilities,
    Modality,
    Prescription,
    SitePolicy,
    StandardProfile,
)
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.emulator import LoggedCommand

REFERENCE_LOAD_OHM = 500
"""IEC 60601-2-10 states output energy, voltage and power into 500 Ω (DESIGN.md §3)."""

RELATIVE_TOLERANCE = 1e-9
"""Rounding slack for float comparisons only; far below any step a plan or the wire can take."""

PLAN_MODALITY = {wire.Modality.EMS: Modality.EMS, wire.Modality.MICROCURRENT: Modality.MICROCURRENT}


def _above(value: float, bound: float) -> bool:
    """A float beyond an upper bound by more than rounding; NaN counts as beyond."""
    return not value <= bound * (1 + RELATIVE_TOLERANCE)


def _below(value: float, bound: float) -> bool:
    """A float beyond a lower bound by more than rounding; NaN counts as beyond."""
    return not value >= bound * (1 - RELATIVE_TOLERANCE)


@dataclass(frozen=True, slots=True)
class WireChannel:
    """One channel's parameters as the device holds them, in the wire's own units."""

    channel: int
    """0-based, as on the wire."""
    modality: wire.Modality
    amplitude_ua: int
    pulse_width_us: int
    """One phase."""
    frequency_millihz: int
    phase_type: wire.PhaseType

    @classmethod
    def configured_by(cls, message: wire.ConfigureChannel) -> WireChannel:
        return cls(
            channel=message.channel,
            modality=message.modality,
            amplitude_ua=message.amplitude_ua,
            pulse_width_us=message.pulse_width_us,
            frequency_millihz=message.frequency_millihz,
            phase_type=message.phase_type,
        )

    # The dose of a rectangular pulse train (the only waveform the simulated device produces),
    # in amperes, seconds and hertz first, then in the unit the limit is stated in.

    @property
    def frequency_hz(self) -> float:
        return self.frequency_millihz / 1000

    @property
    def pulse_duration_s(self) -> float:
        """Both phases of a biphasic pulse, the one phase of a monophasic pulse."""
        phases = 1 if self.phase_type is wire.PhaseType.MONOPHASIC else 2
        return phases * self.pulse_width_us * 1e-6

    @property
    def duty(self) -> float:
        """Fraction of time current flows: pulse duration × f. Above 1, pulses would overlap."""
        return self.pulse_duration_s * self.frequency_hz

    @property
    def peak_current_a(self) -> float:
        return self.amplitude_ua * 1e-6

    @property
    def rms_current_ua(self) -> float:
        """I_rms = I × sqrt(duty)."""
        return self.peak_current_a * math.sqrt(self.duty) * 1e6

    def current_density_ma_per_cm2(self, area_cm2: float) -> float:
        return self.peak_current_a * math.sqrt(self.duty) * 1e3 / area_cm2

    def power_density_w_per_cm2(self, area_cm2: float) -> float:
        """I_rms² × 500 Ω / area."""
        return self.peak_current_a**2 * self.duty * REFERENCE_LOAD_OHM / area_cm2

    def dc_current_density_ma_per_cm2(self, area_cm2: float) -> float:
        """Mean current per area: I × duty for monophasic pulses; biphasic pulses balance to 0."""
        if self.phase_type is not wire.PhaseType.MONOPHASIC:
            return 0.0
        return self.peak_current_a * self.duty * 1e3 / area_cm2

    @property
    def pulse_energy_mj(self) -> float:
        """I² × 500 Ω × pulse duration."""
        return self.peak_current_a**2 * REFERENCE_LOAD_OHM * self.pulse_duration_s * 1e3

    @property
    def peak_voltage_v(self) -> float:
        """I × 500 Ω."""
        return self.peak_current_a * REFERENCE_LOAD_OHM


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A state the device was put in: the decoded command that did it and the channel after it."""

    command: LoggedCommand
    channel: WireChannel


def replay(log: Iterable[LoggedCommand]) -> Iterator[DeviceState]:
    """Every channel state the decoded commands put the device in, in the order they were decoded.

    A CONFIGURE sets all of a channel's parameters, a SET_AMPLITUDE changes the amplitude of the
    channel's last configuration, an EMERGENCY_STOP forgets every configuration. An amplitude
    change, START or RESUME for a channel that holds no configuration is a failure in itself: what
    it would deliver could not be checked.
    """
    held: dict[int, WireChannel] = {}
    last_time = -math.inf
    for entry in log:
        assert entry.timestamp_s >= last_time, ("log out of order", entry)
        last_time = entry.timestamp_s
        message = entry.message
        if isinstance(message, wire.ConfigureChannel):
            held[message.channel] = WireChannel.configured_by(message)
            yield DeviceState(entry, held[message.channel])
        elif isinstance(message, wire.SetAmplitude):
            assert message.channel in held, ("amplitude set on an unconfigured channel", entry)
            held[message.channel] = replace(
                held[message.channel], amplitude_ua=message.amplitude_ua
            )
            yield DeviceState(entry, held[message.channel])
        elif isinstance(message, wire.Start | wire.Resume):
            unconfigured = set(wire.channels_in_mask(message.channel_mask)) - set(held)
            assert not unconfigured, ("output switched on for unconfigured channels", entry)
        elif isinstance(message, wire.EmergencyStop):
            held.clear()


@dataclass(frozen=True, slots=True)
class Layers:
    """The bounds in force for one session: every layer's values, and the electrode area."""

    standard: dict[Modality, StandardProfile]
    capabilities: DeviceCapabilities
    site_policy: SitePolicy
    prescription: Prescription
    area_cm2: float


@dataclass(frozen=True, slots=True)
class Check:
    """One bound of one layer applied to one channel state."""

    bound: str
    """``"<layer>: <quantity> <min|max>"``, the same for every state, so events can count them."""
    value: float
    limit: float | str
    ok: bool


def checks(state: WireChannel, layers: Layers) -> list[Check]:
    """Every bound of every layer that applies to ``state``; layers that leave a bound unset skip it.

    The waveform, ramps, duration and body site are not on the wire; the test checks them on the
    plan. The profile's DC amplitude maximum applies only to DC output, which the device cannot
    produce (its only waveform is rectangular, and the test checks the plan asked for no other).
    """
    found: list[Check] = []

    def at_most(bound: str, value: float, limit: float | None, *, exact: bool = False) -> None:
        if limit is not None:
            ok = value <= limit if exact else not _above(value, limit)
            found.append(Check(bound, value, limit, ok))

    def at_least(bound: str, value: float, limit: float | None, *, exact: bool = False) -> None:
        if limit is not None:
            ok = value >= limit if exact else not _below(value, limit)
            found.append(Check(bound, value, limit, ok))

    def on_step(bound: str, value: int, step: int) -> None:
        found.append(Check(bound, value, step, value % step == 0))

    modality = PLAN_MODALITY[state.modality]
    area = layers.area_cm2
    amplitude, width, hz = state.amplitude_ua, state.pulse_width_us, state.frequency_hz

    profile = layers.standard[modality]
    at_most("standard: amplitude max", amplitude, profile.max_amplitude_ua.value, exact=True)
    guard = profile.min_nonzero_amplitude_ua
    if guard is not None:
        found.append(
            Check(
                "standard: nonzero amplitude min",
                amplitude,
                guard.value,
                amplitude == 0 or amplitude >= guard.value,
            )
        )
    at_least("standard: pulse width min", width, profile.min_pulse_width_us.value, exact=True)
    at_most("standard: pulse width max", width, profile.max_pulse_width_us.value, exact=True)
    at_least("standard: frequency min", hz, profile.min_frequency_hz.value)
    at_most("standard: frequency max", hz, profile.max_frequency_hz.value)
    at_most("standard: pulse within period (duty) max", state.duty, 1.0)
    rms = profile.max_rms_current_ua
    at_most("standard: rms current max", state.rms_current_ua, rms.value if rms else None)
    at_most("standard: pulse energy max", state.pulse_energy_mj, profile.max_pulse_energy_mj.value)
    at_most("standard: peak voltage max", state.peak_voltage_v, profile.max_peak_voltage_v.value)
    at_most(
        "standard: DC current density max",
        state.dc_current_density_ma_per_cm2(area),
        profile.max_dc_current_density_ma_per_cm2.value,
    )
    at_most(
        "standard: power density max",
        state.power_density_w_per_cm2(area),
        profile.max_power_density_w_per_cm2.value,
    )

    device = layers.capabilities
    found.append(
        Check(
            "device: channel count",
            state.channel + 1,
            device.channel_count,
            state.channel < device.channel_count,
        )
    )
    ranges = device.for_modality(modality)
    found.append(Check("device: modality supported", 0, modality.value, ranges is not None))
    if ranges is not None:
        at_least("device: amplitude min", amplitude, ranges.amplitude_min_ua, exact=True)
        at_most("device: amplitude max", amplitude, ranges.amplitude_max_ua, exact=True)
        on_step("device: amplitude step", amplitude, ranges.amplitude_step_ua)
        at_least("device: pulse width min", width, ranges.pulse_width_min_us, exact=True)
        at_most("device: pulse width max", width, ranges.pulse_width_max_us, exact=True)
        on_step("device: pulse width step", width, ranges.pulse_width_step_us)
        at_least("device: frequency min", hz, ranges.frequency_min_hz)
        at_most("device: frequency max", hz, ranges.frequency_max_hz)
    interval_ms = device.min_main_stimulation_interval_ms
    at_most("device: stimulation interval max", hz, 1000 / interval_ms if interval_ms else None)
    at_most(
        "device: current density max",
        state.current_density_ma_per_cm2(area),
        device.max_current_density_ma_per_cm2,
    )
    at_most(
        "device: power density max",
        state.power_density_w_per_cm2(area),
        device.max_power_density_w_per_cm2,
    )

    site = layers.site_policy.for_modality(modality)
    at_most("site: amplitude max", amplitude, site.max_amplitude_ua, exact=True)
    at_most("site: pulse width max", width, site.max_pulse_width_us, exact=True)
    at_most("site: frequency max", hz, site.max_frequency_hz)
    at_most(
        "site: current density max",
        state.current_density_ma_per_cm2(area),
        site.max_current_density_ma_per_cm2,
    )

    prescription = layers.prescription
    if prescription.modalities is not None:
        found.append(
            Check("prescription: modality", 0, modality.value, modality in prescription.modalities)
        )
    at_most("prescription: amplitude max", amplitude, prescription.max_amplitude_ua, exact=True)
    at_most("prescription: pulse width max", width, prescription.max_pulse_width_us, exact=True)
    at_most("prescription: frequency max", hz, prescription.max_frequency_hz)
    return found


def above_warning_threshold(state: WireChannel, layers: Layers) -> bool:
    """Whether the rms current density is above the standard profile's acknowledgement threshold."""
    threshold = layers.standard[PLAN_MODALITY[state.modality]].current_density_warning_ma_per_cm2
    return _above(state.current_density_ma_per_cm2(layers.area_cm2), threshold.value)
