"""The standard layer: a plan and its dose against the modality's standard profile.

This layer always applies, whatever device, site or client: it is also what a record of a session
delivered on a standalone device is measured against. Besides the profile's bounds it refuses plans
that cannot be delivered as written (a pulse longer than its period, ramps longer than the on
period) and the µA/mA mix-up that turns a microcurrent value into a 1000× overdose.
"""

from __future__ import annotations

from sessionlog.safety.dose import PlanDose
from sessionlog.safety.findings import (
    AmplitudeChecks,
    Findings,
    checked_channels,
    format_current,
    is_above,
    modality_name,
    unit_formatter,
)
from sessionlog.safety.plan import UA_PER_MA, ChannelPlan, Modality, StimulationPlan, Waveform
from sessionlog.safety.profiles import (
    SOURCE_PULSE_TIMING,
    SOURCE_RAMP_TIMING,
    Limit,
    StandardProfile,
    standard_profile,
)
from sessionlog.safety.verdict import Layer, ViolationCode, WarningCode

_US = unit_formatter("µs")
_HZ = unit_formatter("Hz")
_S = unit_formatter("s")
_MJ = unit_formatter("mJ")
_V = unit_formatter("V")
_MA_CM2 = unit_formatter("mA/cm²")
_W_CM2 = unit_formatter("W/cm²")


def _microcurrent_mixup_note(amplitude_ua: int) -> str:
    note = (
        "Microcurrent is defined as below 1 mA, so this is most likely a µA/mA mix-up "
        "(a value meant in µA given in mA is a 1000× overdose)."
    )
    if amplitude_ua % UA_PER_MA == 0 and amplitude_ua // UA_PER_MA < UA_PER_MA:
        meant_ua = amplitude_ua // UA_PER_MA
        note += f" If {meant_ua} µA was meant, give amplitude_ua={meant_ua}."
    return note


def _ems_mixup_hint(amplitude_ua: int, profile: StandardProfile) -> str:
    """What to check about a sub-mA EMS amplitude. The engine sees µA only, not the unit the
    input named, so the hint is a question; it suggests the mA reading only where that is an EMS
    amplitude the profile allows (0.5 mA is no 500 mA in disguise: that would be 4× the
    maximum)."""
    if amplitude_ua * UA_PER_MA <= profile.max_amplitude_ua.value:
        return (
            f"Check the unit: if {amplitude_ua} mA was meant (a value in mA given as µA), give "
            f"amplitude_ma={amplitude_ua}."
        )
    return "Check the unit and the value."


def _check_amplitude(
    found: Findings, profile: StandardProfile, channel: ChannelPlan, path: str
) -> None:
    amplitude_ua = channel.amplitude_ua
    subject = f"Channel {channel.channel} amplitude"
    limit = profile.max_amplitude_ua
    note = ""
    if profile.modality is Modality.MICROCURRENT and amplitude_ua >= UA_PER_MA:
        note = _microcurrent_mixup_note(amplitude_ua)
    found.check_max(
        ViolationCode.AMPLITUDE_ABOVE_MAX,
        f"{path}.amplitude_ua",
        subject,
        amplitude_ua,
        limit.value,
        format_current,
        source=limit.source,
        note=note,
    )
    guard = profile.min_nonzero_amplitude_ua
    if guard is not None and 0 < amplitude_ua < guard.value:
        found.violation(
            ViolationCode.UNIT_MIXUP,
            f"{path}.amplitude_ua",
            amplitude_ua,
            guard.value,
            f"{subject} {format_current(amplitude_ua)} is below 1 mA, the microcurrent range, "
            "in an EMS plan: an EMS amplitude is 0 or at least "
            f"{format_current(guard.value)}. {_ems_mixup_hint(amplitude_ua, profile)}",
            guard.source,
        )


def _check_timing(
    found: Findings, profile: StandardProfile, channel: ChannelPlan, path: str, duration_s: int
) -> None:
    number = channel.channel
    for check, limit, code in (
        (found.check_min, profile.min_pulse_width_us, ViolationCode.PULSE_WIDTH_BELOW_MIN),
        (found.check_max, profile.max_pulse_width_us, ViolationCode.PULSE_WIDTH_ABOVE_MAX),
    ):
        check(
            code,
            f"{path}.pulse_width_us",
            f"Channel {number} pulse width",
            channel.pulse_width_us,
            limit.value,
            _US,
            source=limit.source,
        )
    for check, limit, code in (
        (found.check_min, profile.min_frequency_hz, ViolationCode.FREQUENCY_BELOW_MIN),
        (found.check_max, profile.max_frequency_hz, ViolationCode.FREQUENCY_ABOVE_MAX),
    ):
        check(
            code,
            f"{path}.frequency_hz",
            f"Channel {number} frequency",
            channel.frequency_hz,
            limit.value,
            _HZ,
            source=limit.source,
        )
    for name, ramp_s in (("ramp_up_s", channel.ramp_up_s), ("ramp_down_s", channel.ramp_down_s)):
        found.check_max(
            ViolationCode.RAMP_ABOVE_MAX,
            f"{path}.{name}",
            f"Channel {number} {name.removesuffix('_s').replace('_', ' ')}",
            ramp_s,
            profile.max_ramp_s.value,
            _S,
            source=profile.max_ramp_s.source,
        )
    on_period_s = channel.on_time_s if channel.on_time_s is not None else float(duration_s)
    found.check_max(
        ViolationCode.RAMPS_LONGER_THAN_ON_PERIOD,
        f"{path}.ramp_up_s",
        f"Channel {number} ramp up + ramp down",
        channel.ramp_up_s + channel.ramp_down_s,
        on_period_s,
        _S,
        source=SOURCE_RAMP_TIMING,
        note="(The bound is the on time, or the session duration when output is continuous.)",
    )


def _check_pulse_fits_period(
    found: Findings, channel: ChannelPlan, path: str, pulse_us: int
) -> None:
    if channel.waveform is Waveform.DC:
        return
    period_us = 1_000_000 / channel.frequency_hz
    found.check_max(
        ViolationCode.PULSE_LONGER_THAN_PERIOD,
        f"{path}.pulse_width_us",
        f"Channel {channel.channel} pulse duration (all phases)",
        pulse_us,
        period_us,
        _US,
        source=SOURCE_PULSE_TIMING,
        note=f"(The period at {channel.frequency_hz:g} Hz.)",
    )


_DOSE_MAXIMA = (
    (
        ViolationCode.PULSE_ENERGY_ABOVE_MAX,
        "pulse_energy_mj",
        "max_pulse_energy_mj",
        "pulse energy into 500 Ω",
        _MJ,
    ),
    (
        ViolationCode.PEAK_VOLTAGE_ABOVE_MAX,
        "peak_voltage_v",
        "max_peak_voltage_v",
        "peak voltage across 500 Ω",
        _V,
    ),
    (
        ViolationCode.DC_CURRENT_DENSITY_ABOVE_MAX,
        "dc_current_density_ma_per_cm2",
        "max_dc_current_density_ma_per_cm2",
        "DC current density",
        _MA_CM2,
    ),
    (
        ViolationCode.POWER_DENSITY_ABOVE_MAX,
        "power_density_w_per_cm2",
        "max_power_density_w_per_cm2",
        "average power density at 500 Ω",
        _W_CM2,
    ),
)
"""Dose figures every profile bounds: (code, figure, the profile's limit, subject, format)."""


def _check_dose(
    found: Findings, profile: StandardProfile, plan_channel: ChannelPlan, dose: PlanDose, index: int
) -> None:
    # Each figure is compared before its field path and subject are worded: this runs for every
    # channel of every approval and every live change, and nearly every figure is within bounds.
    figures = dose.channels[index]
    path = f"dose.channels[{index}]"
    number = figures.channel
    rms_limit = profile.max_rms_current_ua
    if rms_limit is not None and is_above(figures.rms_current_ua, rms_limit.value):
        found.check_max(
            ViolationCode.RMS_CURRENT_ABOVE_MAX,
            f"{path}.rms_current_ua",
            f"Channel {number} rms current",
            figures.rms_current_ua,
            rms_limit.value,
            format_current,
            source=rms_limit.source,
        )
    for code, name, limit_name, subject, fmt in _DOSE_MAXIMA:
        limit: Limit = getattr(profile, limit_name)
        value: float = getattr(figures, name)
        if is_above(value, limit.value):
            found.check_max(
                code,
                f"{path}.{name}",
                f"Channel {number} {subject}",
                value,
                limit.value,
                fmt,
                source=limit.source,
            )
    dc_limit = profile.max_dc_amplitude_ua
    if dc_limit is not None and is_above(figures.dc_current_ua, dc_limit.value):
        # The bound holds for the direct current a channel delivers, whatever its waveform is
        # called: one-way pulses carry their mean as DC, and at a duty of 1 they are DC outright.
        is_dc = plan_channel.waveform is Waveform.DC
        found.check_max(
            ViolationCode.DC_AMPLITUDE_ABOVE_MAX,
            f"channels[{index}].amplitude_ua" if is_dc else f"{path}.dc_current_ua",
            f"Channel {number} DC amplitude"
            if is_dc
            else f"Channel {number} DC component (mean current of one-way pulses)",
            figures.dc_current_ua,
            dc_limit.value,
            format_current,
            source=dc_limit.source,
        )
    warning = profile.current_density_warning_ma_per_cm2
    if is_above(figures.current_density_ma_per_cm2, warning.value):
        found.warn_above(
            WarningCode.CURRENT_DENSITY_HIGH,
            f"{path}.current_density_ma_per_cm2",
            f"Channel {number} rms current density",
            figures.current_density_ma_per_cm2,
            warning.value,
            _MA_CM2,
            source=warning.source,
        )


def check_standard_layer(
    plan: StimulationPlan, dose: PlanDose, *, amplitude_checks_for: AmplitudeChecks = None
) -> Findings:
    """Every standard-profile check for the plan's modality; all findings, never only the first.

    With ``amplitude_checks_for`` (channel indexes) only the checks that read an amplitude or a
    dose figure (``_check_amplitude``, ``_check_dose``) run, for those channels, in the same order:
    the limits engine's live-change path, whose other checks read nothing a change can alter.
    """
    profile = standard_profile(plan.modality)
    modality_label = modality_name(plan.modality)
    found = Findings(Layer.STANDARD, f"{modality_label} standard")
    every_check = amplitude_checks_for is None
    for index in checked_channels(len(plan.channels), amplitude_checks_for):
        channel = plan.channels[index]
        path = f"channels[{index}]"
        _check_amplitude(found, profile, channel, path)
        if every_check:
            _check_timing(found, profile, channel, path, plan.duration_s)
            _check_pulse_fits_period(found, channel, path, dose.channels[index].pulse_duration_us)
        _check_dose(found, profile, channel, dose, index)
    if not every_check:
        return found
    found.check_max(
        ViolationCode.DURATION_ABOVE_MAX,
        "duration_s",
        "Session duration",
        plan.duration_s,
        profile.max_duration_s.value,
        _S,
        source=profile.max_duration_s.source,
    )
    site = plan.electrode.body_site
    if site in profile.forbidden_body_sites:
        found.violation(
            ViolationCode.BODY_SITE_FORBIDDEN,
            "electrode.body_site",
            site.value,
            None,
            f"Body site {site.value} is never allowed for {modality_label} stimulation.",
            profile.forbidden_body_sites_source,
        )
    return found
