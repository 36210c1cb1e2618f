"""Derived dose figures: what a plan delivers into the body, per channel and per session.

The limits engine checks these figures against the safety layers, and the session record stores
them, so they are pure functions of a plan with the formulas of DESIGN.md §3 written out in one
place. Every figure is an upper estimate where the plan leaves room for interpretation
(non-rectangular waveforms, asymmetric biphasic pulses, ramps), so a check against them errs on the
side of refusing. Resistive figures assume the 500 Ω reference load of IEC 60601-2-10.
"""

from __future__ import annotations

import math
from operator import attrgetter

from pydantic import BaseModel, ConfigDict

from sessionlog.safety.plan import ChannelPlan, PhaseType, StimulationPlan, Waveform

REFERENCE_LOAD_OHM = 500
"""IEC 60601-2-10 states output energy and voltage into 500 Ω; power density uses the same load."""

_US_PER_S = 1_000_000
_UA_PER_A = 1_000_000
_UA_PER_MA = 1000
_UA2_PER_A2 = 10**12
_MJ_DENOMINATOR = 10**15  # µA² · Ω · µs = 1e-18 J = 1e-15 mJ


def _exact_ratio(numerator: int, denominator: int) -> float:
    """Divide two integers with a single rounding, so a figure that lands on a bound equals it.

    Parsed plans are bounded, but a record built without validation may not be: a figure beyond
    the float range becomes infinity, which fails every check, rather than an exception.
    """
    try:
        return numerator / denominator
    except OverflowError:
        return math.inf


class DoseFigures(BaseModel):
    """The dose one channel delivers, in the units the safety limits are stated in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: int
    phase_charge_uc: float
    """Q = I × phase duration: the charge of one phase."""
    net_charge_per_pulse_uc: float
    """Charge left in the tissue per pulse: 0 for charge-balanced biphasic, Q for monophasic/DC."""
    pulse_duration_us: int
    """Time current flows per pulse: both phases for biphasic pulses, one for monophasic."""
    duty_fraction: float
    """Fraction of time current flows: pulse duration × f (1 for DC). Above 1, pulses overlap."""
    rms_current_ua: float
    """I_rms = I_peak × sqrt(duty fraction); I for DC."""
    dc_current_ua: float
    """Mean (net direct) current: 0 if charge-balanced, I × phase × f if monophasic, I for DC."""
    current_density_ma_per_cm2: float
    dc_current_density_ma_per_cm2: float
    power_density_w_per_cm2: float
    """Average power into the reference load per electrode area: I_rms² × 500 Ω / area."""
    pulse_energy_mj: float
    """Energy of one pulse into the reference load: I² × 500 Ω × pulse duration."""
    peak_voltage_v: float
    """Voltage across the reference load at peak current: I × 500 Ω."""
    on_time_fraction: float
    on_time_s: float
    """Seconds of the session in which this channel is in its on phase (ramps included)."""
    total_charge_uc: float
    """Absolute charge delivered over the session; ramps counted at half amplitude."""


class PlanDose(BaseModel):
    """Per-channel figures and the plan-level summary stored with a session."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[DoseFigures, ...]
    max_current_density_ma_per_cm2: float
    max_dc_current_density_ma_per_cm2: float
    max_power_density_w_per_cm2: float
    total_charge_uc: float
    """Sum over channels of the absolute charge delivered per session."""
    on_time_s: float
    """The longest on-time of any channel: the time during which some output is active."""


def pulse_duration_us(channel: ChannelPlan) -> int:
    """Time current flows per pulse: both phases of a biphasic pulse, the one phase of a monophasic.

    An asymmetric biphasic pulse is taken as charge-balanced.
    Counting the second phase at full amplitude and the same duration is an upper bound for a
    charge-balanced asymmetric pulse (its second phase is longer and proportionally weaker, so it
    carries less I²·t), which keeps the rms and energy figures conservative.
    """
    if channel.phase_type is PhaseType.MONOPHASIC:
        return channel.pulse_width_us
    return 2 * channel.pulse_width_us


def on_time_s(channel: ChannelPlan, duration_s: float) -> float:
    """Seconds spent in on phases: whole on/off cycles plus the on part of a final partial cycle."""
    if channel.on_time_s is None or channel.off_time_s is None:
        return float(duration_s)
    period_s = channel.on_time_s + channel.off_time_s
    whole_cycles = math.floor(duration_s / period_s)
    remainder_s = duration_s - whole_cycles * period_s
    return whole_cycles * channel.on_time_s + min(remainder_s, channel.on_time_s)


def ramp_factor(channel: ChannelPlan, duration_s: float) -> float:
    """Share of full-amplitude charge delivered per on period, linear ramps counting at half.

    Ramps are taken to lie inside each on period (or the whole session when output is continuous). A
    ramp longer than its period is counted over the period only; the limits engine refuses such a
    plan anyway.
    """
    on_period_s = channel.on_time_s if channel.on_time_s is not None else float(duration_s)
    ramp_s = min(channel.ramp_up_s + channel.ramp_down_s, on_period_s)
    return 1.0 - ramp_s / (2.0 * on_period_s)


def channel_dose(channel: ChannelPlan, *, area_cm2: float, duration_s: float) -> DoseFigures:
    """One channel's figures. Pure and total: every parsed ChannelPlan gives figures, no raise.

    Pulsed waveforms use the rectangular-pulse formulas; for sine and triangular pulses these are
    upper bounds (their rms is lower than a rectangle of the same peak). DC is continuous: duty 1,
    I_rms = I.
    """
    current_ua = channel.amplitude_ua
    peak_ua = _exact_ratio(current_ua, 1)
    pulse_us = pulse_duration_us(channel)
    phase_charge_uc = _exact_ratio(current_ua * channel.pulse_width_us, _US_PER_S)

    if channel.waveform is Waveform.DC:
        duty = 1.0
        dc_ua = peak_ua
        net_charge_uc = phase_charge_uc
    else:
        duty = pulse_us * channel.frequency_hz / _US_PER_S
        if channel.phase_type is PhaseType.MONOPHASIC:
            dc_ua = peak_ua * duty
            net_charge_uc = phase_charge_uc
        else:
            dc_ua = 0.0
            net_charge_uc = 0.0
    rms_ua = peak_ua * math.sqrt(duty)
    mean_square_ua2 = peak_ua * peak_ua * duty
    on_s = on_time_s(channel, duration_s)
    return DoseFigures(
        channel=channel.channel,
        phase_charge_uc=phase_charge_uc,
        net_charge_per_pulse_uc=net_charge_uc,
        pulse_duration_us=pulse_us,
        duty_fraction=duty,
        rms_current_ua=rms_ua,
        dc_current_ua=dc_ua,
        current_density_ma_per_cm2=rms_ua / _UA_PER_MA / area_cm2,
        dc_current_density_ma_per_cm2=dc_ua / _UA_PER_MA / area_cm2,
        power_density_w_per_cm2=mean_square_ua2 * REFERENCE_LOAD_OHM / _UA2_PER_A2 / area_cm2,
        pulse_energy_mj=_exact_ratio(
            current_ua * current_ua * REFERENCE_LOAD_OHM * pulse_us, _MJ_DENOMINATOR
        ),
        peak_voltage_v=_exact_ratio(current_ua * REFERENCE_LOAD_OHM, _UA_PER_A),
        on_time_fraction=on_s / duration_s,
        on_time_s=on_s,
        total_charge_uc=peak_ua * duty * on_s * ramp_factor(channel, duration_s),
    )


def plan_dose(plan: StimulationPlan) -> PlanDose:
    """Per-channel figures for the plan's electrode area and duration, and the session summary."""
    return summarise_dose(
        tuple(
            channel_dose(c, area_cm2=plan.electrode.area_cm2, duration_s=plan.duration_s)
            for c in plan.channels
        )
    )


def summarise_dose(figures: tuple[DoseFigures, ...]) -> PlanDose:
    """The plan-level summary of per-channel figures (at least one), in plan channel order.

    Separate from ``plan_dose`` so that a live change, which alters one channel, recomputes that
    channel's figures only and still gets the summary from this one formula.
    """
    return PlanDose(
        channels=figures,
        max_current_density_ma_per_cm2=max(map(_CURRENT_DENSITY, figures)),
        max_dc_current_density_ma_per_cm2=max(map(_DC_CURRENT_DENSITY, figures)),
        max_power_density_w_per_cm2=max(map(_POWER_DENSITY, figures)),
        total_charge_uc=sum(map(_TOTAL_CHARGE, figures)),
        on_time_s=max(map(_ON_TIME, figures)),
    )


_CURRENT_DENSITY = attrgetter("current_density_ma_per_cm2")
_DC_CURRENT_DENSITY = attrgetter("dc_current_density_ma_per_cm2")
_POWER_DENSITY = attrgetter("power_density_w_per_cm2")
_TOTAL_CHARGE = attrgetter("total_charge_uc")
_ON_TIME = attrgetter("on_time_s")
