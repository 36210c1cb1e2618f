"""Properties of the limits engine over generated plans and layers.

For any valid plan in any context: the engine never raises; if it reports no violations, every value
lies inside every layer's bounds (checked here independently, with plain comparisons); every violation
it reports is real (the value is beyond the bound it names); and an approval always comes with an
ApprovedPlan and fully acknowledged warnings.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sessionlog.safety import (
    ChannelPlan,
    ClientContext,
    DeviceCapabilities,
    LimitsEngine,
    Modality,
    PhaseType,
    SitePolicy,
    StimulationPlan,
    Verdict,
    Waveform,
    check_standard,
)

from .strategies import any_amplitude_ua, contexts, mostly, plans

ENGINE = LimitsEngine()
EMS_FORBIDDEN = {"head_transcranial", "eyes", "mouth", "neck_anterior", "chest_transthoracic"}
MICROCURRENT_FORBIDDEN = {"eyes", "neck_anterior", "chest_transthoracic"}
TOLERANCE = 1e-9  # for derived float figures recomputed here in a different order


def _pulse_us(channel: ChannelPlan) -> int:
    biphasic = channel.phase_type is not PhaseType.MONOPHASIC
    return channel.pulse_width_us * (2 if biphasic else 1)


def _rms_ua(channel: ChannelPlan) -> float:
    if channel.waveform is Waveform.DC:
        return float(channel.amplitude_ua)
    return channel.amplitude_ua * math.sqrt(_pulse_us(channel) * channel.frequency_hz / 1e6)


def _dc_ua(channel: ChannelPlan) -> float:
    if channel.waveform is Waveform.DC:
        return float(channel.amplitude_ua)
    if channel.phase_type is PhaseType.MONOPHASIC:
        return channel.amplitude_ua * channel.pulse_width_us * channel.frequency_hz / 1e6
    return 0.0


def _within(value: float, bound: float) -> bool:
    return value <= bound * (1 + TOLERANCE)


def _assert_inside_standard(plan: StimulationPlan) -> None:
    ems = plan.modality is Modality.EMS
    assert plan.duration_s <= 3600
    forbidden = EMS_FORBIDDEN if ems else MICROCURRENT_FORBIDDEN
    assert plan.electrode.body_site.value not in forbidden
    area = plan.electrode.area_cm2
    for c in plan.channels:
        amp = c.amplitude_ua
        if ems:
            assert amp <= 120_000
            assert amp == 0 or amp >= 1000
            assert 20 <= c.pulse_width_us <= 600
            assert 1.0 <= c.frequency_hz <= 150.0
            assert _within(_rms_ua(c), 50_000)
        else:
            assert amp <= 999
            assert c.waveform is not Waveform.DC or amp <= 100
            assert 10 <= c.pulse_width_us <= 1_000_000
            assert 0.1 <= c.frequency_hz <= 1000.0
        assert c.ramp_up_s <= 10.0
        assert c.ramp_down_s <= 10.0
        assert amp * amp * 500 * _pulse_us(c) <= 300 * 10**15  # 300 mJ in 1e-18 J units
        assert amp * 500 <= 500 * 10**6  # 500 V in µV
        assert _within(_rms_ua(c) ** 2 * 500 / 1e12 / area, 0.25)
        assert _within(_dc_ua(c) / 1000 / area, 0.2)
        if c.waveform is not Waveform.DC:
            assert _pulse_us(c) * c.frequency_hz <= 1e6 * (1 + TOLERANCE)


def _assert_inside_device(plan: StimulationPlan, caps: DeviceCapabilities) -> None:
    assert plan.modality in caps.modalities
    ranges = caps.modalities[plan.modality]
    area = plan.electrode.area_cm2
    for c in plan.channels:
        assert c.channel <= caps.channel_count
        assert ranges.amplitude_min_ua <= c.amplitude_ua <= ranges.amplitude_max_ua
        assert c.amplitude_ua % ranges.amplitude_step_ua == 0
        assert ranges.pulse_width_min_us <= c.pulse_width_us <= ranges.pulse_width_max_us
        assert c.pulse_width_us % ranges.pulse_width_step_us == 0
        assert ranges.frequency_min_hz <= c.frequency_hz <= ranges.frequency_max_hz
        if caps.min_main_stimulation_interval_ms is not None:
            assert 1000.0 / c.frequency_hz >= caps.min_main_stimulation_interval_ms * (
                1 - TOLERANCE
            )
        assert ranges.waveforms is None or c.waveform in ranges.waveforms
        assert ranges.phase_types is None or c.phase_type in ranges.phase_types
        if caps.max_current_density_ma_per_cm2 is not None:
            assert _within(_rms_ua(c) / 1000 / area, caps.max_current_density_ma_per_cm2)
        if caps.max_power_density_w_per_cm2 is not None:
            assert _within(_rms_ua(c) ** 2 * 500 / 1e12 / area, caps.max_power_density_w_per_cm2)


def _assert_inside_site(plan: StimulationPlan, policy: SitePolicy) -> None:
    rules = policy.ems if plan.modality is Modality.EMS else policy.microcurrent
    assert plan.electrode.body_site not in policy.forbidden_body_sites
    assert plan.electrode.body_site not in rules.forbidden_body_sites
    assert rules.max_duration_s is None or plan.duration_s <= rules.max_duration_s
    for c in plan.channels:
        assert rules.max_amplitude_ua is None or c.amplitude_ua <= rules.max_amplitude_ua
        assert rules.max_frequency_hz is None or c.frequency_hz <= rules.max_frequency_hz
        assert rules.max_pulse_width_us is None or c.pulse_width_us <= rules.max_pulse_width_us
        if rules.max_current_density_ma_per_cm2 is not None:
            density = _rms_ua(c) / 1000 / plan.electrode.area_cm2
            assert _within(density, rules.max_current_density_ma_per_cm2)


def _assert_inside_prescription(plan: StimulationPlan, client: ClientContext) -> None:
    overridden = {o.contraindication for o in client.overrides}
    assert client.contraindications <= overridden
    p = client.prescription
    if p is None:
        return
    assert p.modalities is None or plan.modality in p.modalities
    assert p.allowed_body_sites is None or plan.electrode.body_site in p.allowed_body_sites
    assert p.max_duration_s is None or plan.duration_s <= p.max_duration_s
    for c in plan.channels:
        assert p.max_amplitude_ua is None or c.amplitude_ua <= p.max_amplitude_ua
        assert p.max_frequency_hz is None or c.frequency_hz <= p.max_frequency_hz
        assert p.max_pulse_width_us is None or c.pulse_width_us <= p.max_pulse_width_us


def _assert_violations_are_real(verdict: Verdict) -> None:
    for v in verdict.violations:
        if isinstance(v.value, str) or isinstance(v.bound, str) or v.bound is None:
            continue
        if v.code.endswith("_above_max"):
            assert not v.value <= v.bound, v.message
        elif v.code.endswith("_below_min"):
            assert not v.value >= v.bound, v.message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans(), context=contexts)
def test_no_violations_means_every_value_is_inside_every_layer(
    plan: StimulationPlan, context: dict[str, Any]
) -> None:
    verdict = ENGINE.approve(plan, **context)

    _assert_violations_are_real(verdict)
    if verdict.approved:
        assert verdict.approved_plan is not None
        assert verdict.approved_plan.plan == plan
        assert all(w.acknowledged for w in verdict.warnings)
    else:
        assert verdict.approved_plan is None
    if verdict.violations:
        return
    event(f"no violations; layers: {'+'.join(verdict.layers)}")
    _assert_inside_standard(plan)
    if context["capabilities"] is not None:
        _assert_inside_device(plan, context["capabilities"])
    if context["site_policy"] is not None:
        _assert_inside_site(plan, context["site_policy"])
    if context["client"] is not None:
        _assert_inside_prescription(plan, context["client"])


@settings(max_examples=300, deadline=None)
@given(plan=plans())
def test_approve_never_raises_and_check_standard_agrees_with_the_standard_layer(
    plan: StimulationPlan,
) -> None:
    verdict = ENGINE.approve(plan)
    assert list(verdict.violations) == check_standard(plan)


@settings(max_examples=150, deadline=None)
@given(
    plan=plans(),
    context=contexts,
    new_amplitude_ua=mostly(st.integers(0, 130_000), any_amplitude_ua),
)
def test_a_live_change_is_judged_exactly_like_a_fresh_plan_with_that_amplitude(
    plan: StimulationPlan, context: dict[str, Any], new_amplitude_ua: int
) -> None:
    first = ENGINE.approve(plan, **context)
    if first.approved_plan is None:
        return
    number = plan.channels[0].channel
    changed = ENGINE.approve_change(
        first.approved_plan, channel=number, amplitude_ua=new_amplitude_ua
    )

    data = plan.model_dump()
    data["channels"][0]["amplitude_ua"] = new_amplitude_ua
    carried = first.approved_plan.acknowledged_warnings  # acknowledged for the running plan
    fresh = ENGINE.approve(
        StimulationPlan.model_validate(data), **{**context, "acknowledged_warnings": carried}
    )
    assert changed.violations == fresh.violations
    assert changed.approved == fresh.approved
