"""A live change is judged exactly as a full approval of the changed plan would judge it.

``LimitsEngine.approve_change`` takes a shorter path than ``approve`` (it validates only the changed
channel, recomputes only its dose figures and runs only the checks an amplitude can affect). These
properties hold it to the full path: over generated plans, every combination of layers (device
capabilities, site policies, client prescriptions and screening) and amplitudes drawn around every
bound of every layer, the two verdicts agree in every field (approved or not, each violation and
warning with its wording, the dose figures, the layers, the overrides and the approved plan), also
along a chain of changes where each approved change is the base of the next.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from sessionlog.safety import (
    ApprovedPlan,
    ClientContext,
    Contraindication,
    ContraindicationOverride,
    DeviceCapabilities,
    LimitsEngine,
    Modality,
    ModalityCapabilities,
    ModalityPolicy,
    PhaseType,
    Prescription,
    SitePolicy,
    StimulationPlan,
    Verdict,
    WarningCode,
    Waveform,
)
from sessionlog.safety.plan import MAX_REPRESENTABLE_AMPLITUDE_UA, UA_PER_MA

from .plans import make_plan
from .strategies import any_amplitude_ua, contexts, plans

ENGINE = LimitsEngine()


def amplitude_bounds_ua(
    plan: StimulationPlan,
    index: int,
    capabilities: DeviceCapabilities | None,
    site_policy: SitePolicy | None,
    prescribed_max_ua: int | None,
) -> list[int]:
    """Every amplitude of channel ``index`` at which some check of some layer changes its answer.

    Dose bounds are inverted from the DESIGN.md formulas (rms, current and power density, pulse
    energy, DC density), so a drawn amplitude lands just below, on or just above each of them.
    """
    channel = plan.channels[index]
    area = plan.electrode.area_cm2
    pulse_us = channel.pulse_width_us * (1 if channel.phase_type is PhaseType.MONOPHASIC else 2)
    if channel.waveform is Waveform.DC:
        duty, dc_share = 1.0, 1.0
    else:
        duty = pulse_us * channel.frequency_hz / 1e6
        dc_share = duty if channel.phase_type is PhaseType.MONOPHASIC else 0.0
    bounds: list[float] = [0, 1, 100, 999, 1000, 120_000, MAX_REPRESENTABLE_AMPLITUDE_UA]
    density_limits_ma_per_cm2 = [2.0]  # the standard layer's warning threshold
    power_limits_w_per_cm2 = [0.25]
    if capabilities is not None:
        ranges = capabilities.for_modality(plan.modality)
        if ranges is not None:
            step = ranges.amplitude_step_ua
            for bound in (ranges.amplitude_min_ua, ranges.amplitude_max_ua):
                bounds += [bound, bound // step * step, bound // step * step + step]
        if capabilities.max_current_density_ma_per_cm2 is not None:
            density_limits_ma_per_cm2.append(capabilities.max_current_density_ma_per_cm2)
        if capabilities.max_power_density_w_per_cm2 is not None:
            power_limits_w_per_cm2.append(capabilities.max_power_density_w_per_cm2)
    if site_policy is not None:
        rules = site_policy.for_modality(plan.modality)
        if rules.max_amplitude_ua is not None:
            bounds.append(rules.max_amplitude_ua)
        if rules.max_current_density_ma_per_cm2 is not None:
            density_limits_ma_per_cm2.append(rules.max_current_density_ma_per_cm2)
    if prescribed_max_ua is not None:
        bounds.append(prescribed_max_ua)
    if duty > 0:
        bounds.append(50_000 / math.sqrt(duty))  # rms current
        bounds += [limit * 1000 * area / math.sqrt(duty) for limit in density_limits_ma_per_cm2]
        bounds += [
            math.sqrt(limit * area * 1e12 / (500 * duty)) for limit in power_limits_w_per_cm2
        ]
    bounds.append(math.sqrt(300 * 1e15 / (500 * pulse_us)))  # pulse energy into 500 Ω
    if dc_share > 0:
        bounds.append(0.2 * 1000 * area / dc_share)  # DC current density
    return sorted({round(b) for b in bounds if math.isfinite(b)})


def amplitudes_around_bounds(
    plan: StimulationPlan, index: int, context: dict[str, Any]
) -> st.SearchStrategy[int]:
    client = context["client"]
    prescription = client.prescription if client is not None else None
    bounds = amplitude_bounds_ua(
        plan,
        index,
        context["capabilities"],
        context["site_policy"],
        prescription.max_amplitude_ua if prescription is not None else None,
    )
    near_a_bound = st.tuples(st.sampled_from(bounds), st.integers(-2, 2)).map(
        lambda pair: min(MAX_REPRESENTABLE_AMPLITUDE_UA, max(0, pair[0] + pair[1]))
    )
    return st.one_of(near_a_bound, near_a_bound, any_amplitude_ua)


def _at_least(value: float) -> st.SearchStrategy[float]:
    """A bound the value lies within: often exactly on it, so that any step up crosses it."""
    return st.sampled_from([1.0, 1.0, 1.2, 2.0]).map(lambda factor: value * factor)


def _positive_bound_of(value: float) -> st.SearchStrategy[float | None]:
    """No bound, or one the value keeps; a bound must be positive, so none for a zero value."""
    return st.none() if value <= 0 else st.none() | _at_least(value)


def _amplitude_ceiling(modality: Modality) -> Callable[[float], int]:
    """A ceiling a site or prescription may state: representable, and for microcurrent below 1 mA
    (a higher one is refused as a unit mix-up)."""
    highest = UA_PER_MA - 1 if modality is Modality.MICROCURRENT else MAX_REPRESENTABLE_AMPLITUDE_UA
    return lambda amplitude_ua: min(highest, int(amplitude_ua))


@st.composite
def covering_contexts(draw: st.DrawFn, plan: StimulationPlan) -> dict[str, Any]:
    """Device capabilities, a site policy and a client whose every bound the plan keeps (each
    layer present or not), so that the plan is approved and a live change can cross any bound."""
    dose = ENGINE.approve(plan).dose
    channels = plan.channels
    amplitudes = [c.amplitude_ua for c in channels]
    max_density = dose.max_current_density_ma_per_cm2
    capabilities = None
    if draw(st.booleans()):
        steps = [s for s in (1, 10, 100, 1000) if all(a % s == 0 for a in amplitudes)]
        max_frequency = max(c.frequency_hz for c in channels)
        ranges = ModalityCapabilities(
            amplitude_min_ua=draw(st.integers(0, min(amplitudes))),
            amplitude_max_ua=max(amplitudes) + draw(st.sampled_from([0, 0, 1000, 50_000])),
            amplitude_step_ua=draw(st.sampled_from(steps)),
            pulse_width_min_us=min(c.pulse_width_us for c in channels),
            pulse_width_max_us=max(c.pulse_width_us for c in channels),
            frequency_min_hz=min(c.frequency_hz for c in channels),
            frequency_max_hz=max_frequency,
            waveforms=draw(st.sampled_from([None, frozenset(c.waveform for c in channels)])),
            phase_types=draw(st.sampled_from([None, frozenset(c.phase_type for c in channels)])),
        )
        capabilities = DeviceCapabilities(
            model_name="covering",
            channel_count=max(c.channel for c in channels),
            modalities={plan.modality: ranges},
            max_current_density_ma_per_cm2=draw(_positive_bound_of(max_density)),
            max_power_density_w_per_cm2=draw(_positive_bound_of(dose.max_power_density_w_per_cm2)),
            min_main_stimulation_interval_ms=draw(st.none() | st.just(900.0 / max_frequency)),
        )
    site_policy = None
    if draw(st.booleans()):
        rules = ModalityPolicy(
            max_amplitude_ua=draw(
                st.none() | _at_least(max(amplitudes)).map(_amplitude_ceiling(plan.modality))
            ),
            max_frequency_hz=max(c.frequency_hz for c in channels),
            max_pulse_width_us=max(c.pulse_width_us for c in channels),
            max_duration_s=plan.duration_s,
            max_current_density_ma_per_cm2=draw(_positive_bound_of(max_density)),
        )
        site_policy = SitePolicy(
            name=draw(st.none() | st.just("Clinic")),
            **{plan.modality.value: rules},
            warnings_acknowledgeable=draw(st.booleans()),
        )
    client = None
    if draw(st.booleans()):
        contraindications = draw(st.frozensets(st.sampled_from(Contraindication), max_size=2))
        client = ClientContext(
            prescription=Prescription(
                modalities=[plan.modality],
                max_amplitude_ua=draw(
                    st.none() | _at_least(max(amplitudes)).map(_amplitude_ceiling(plan.modality))
                ),
                max_frequency_hz=max(c.frequency_hz for c in channels),
                max_pulse_width_us=max(c.pulse_width_us for c in channels),
                max_duration_s=plan.duration_s,
                allowed_body_sites=[plan.electrode.body_site],
            ),
            contraindications=contraindications,
            overrides=[
                ContraindicationOverride(contraindication=c, authorised_by="Dr. X", reason="ok")
                for c in sorted(contraindications)
            ],
        )
    return {
        "capabilities": capabilities,
        "site_policy": site_policy,
        "client": client,
        "acknowledged_warnings": draw(
            st.frozensets(st.just(WarningCode.CURRENT_DENSITY_HIGH.value), min_size=1)
            | st.just(frozenset())
        ),
    }


@st.composite
def dense_plans(draw: st.DrawFn) -> StimulationPlan:
    """EMS plans on small electrodes with rms current densities around the 2 mA/cm² warning
    threshold (so some channels raise the warning) and within every hard bound."""
    area_cm2 = draw(st.floats(2.0, 8.0))
    channels = []
    for number in draw(st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True)):
        pulse_width_us = draw(st.integers(100, 400))
        frequency_hz = draw(st.sampled_from([20.0, 35.0, 50.0, 80.0]))
        duty = 2 * pulse_width_us * frequency_hz / 1e6
        density_ma_per_cm2 = draw(st.floats(1.5, 3.0))
        amplitude_ma = int(density_ma_per_cm2 * area_cm2 / math.sqrt(duty))
        channels.append(
            {
                "channel": number,
                "amplitude_ma": min(120, max(1, amplitude_ma)),
                "pulse_width_us": pulse_width_us,
                "frequency_hz": frequency_hz,
            }
        )
    return StimulationPlan.model_validate(
        {
            "modality": Modality.EMS,
            "channels": channels,
            "duration_s": draw(st.integers(60, 3600)),
            "electrode": {"body_site": "calf", "area_cm2": area_cm2},
        }
    )


@st.composite
def running_plans(draw: st.DrawFn) -> tuple[StimulationPlan, dict[str, Any]]:
    """A plan and its context, mostly both chosen so that the first approval passes: a plan within
    the standard profile and a context every bound of which the plan keeps. One plan in three is
    a dense one, whose current-density warnings are acknowledged and carried across changes."""
    plan = draw(st.one_of(plans(), plans(), dense_plans()))
    if draw(st.integers(0, 3)) > 0:
        assume(not ENGINE.approve(plan).violations)
    context = draw(st.one_of(covering_contexts(plan), covering_contexts(plan), contexts))
    return plan, context


def full_approval_of_change(
    base: ApprovedPlan,
    context: dict[str, Any],
    index: int,
    amplitude_ua: int,
    acknowledged: frozenset[str],
) -> Verdict:
    """What ``approve`` says of the changed plan, built and validated from scratch."""
    data = base.plan.model_dump()
    data["channels"][index]["amplitude_ua"] = amplitude_ua
    return ENGINE.approve(
        StimulationPlan.model_validate(data),
        capabilities=context["capabilities"],
        site_policy=context["site_policy"],
        client=context["client"],
        acknowledged_warnings=base.acknowledged_warnings | acknowledged,
    )


def unacknowledged_new_fields(
    full: Verdict, base: ApprovedPlan, acknowledged: frozenset[str]
) -> set[tuple[str, str]]:
    """(code, field) of the warnings in ``full`` acknowledged only by a code of the running plan
    ``base``, on a field it did not raise that code on, nor acknowledged with the change."""
    return {
        (w.code, w.field)
        for w in full.warnings
        if w.code not in acknowledged and (w.code, w.field) not in base.acknowledged_fields
    }


def assert_refused_for_new_fields(
    fast: Verdict, full: Verdict, new_fields: set[tuple[str, str]]
) -> None:
    """``fast`` is ``full`` with the warnings on ``new_fields`` unacknowledged, so refused."""
    expected = tuple(
        w.model_copy(update={"acknowledged": False}) if (w.code, w.field) in new_fields else w
        for w in full.warnings
    )
    assert not fast.approved
    assert fast.approved_plan is None
    assert fast.warnings == expected
    assert fast.violations == full.violations
    assert fast.dose == full.dose
    assert fast.layers == full.layers
    assert fast.overrides_applied == full.overrides_applied


def assert_same_verdict(fast: Verdict, full: Verdict) -> None:
    assert fast.approved == full.approved
    assert fast.violations == full.violations
    assert fast.warnings == full.warnings
    assert fast.dose == full.dose
    assert fast.layers == full.layers
    assert fast.overrides_applied == full.overrides_applied
    assert fast.model_dump(mode="json") == full.model_dump(mode="json")
    assert fast.reasons == full.reasons
    if full.approved_plan is None:
        assert fast.approved_plan is None
        return
    assert fast.approved_plan is not None
    got, expected = fast.approved_plan, full.approved_plan
    assert got.plan == expected.plan
    assert got.plan.model_dump() == expected.plan.model_dump()
    assert got.dose == expected.dose
    assert got.layers == expected.layers
    assert got.capabilities == expected.capabilities
    assert got.site_policy == expected.site_policy
    assert got.client == expected.client
    assert got.acknowledged_warnings == expected.acknowledged_warnings
    assert got.acknowledged_fields == expected.acknowledged_fields


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(scenario=running_plans(), data=st.data())
def test_a_live_change_gives_the_verdict_of_a_full_approval_of_the_changed_plan(
    scenario: tuple[StimulationPlan, dict[str, Any]], data: st.DataObject
) -> None:
    plan, context = scenario
    first = ENGINE.approve(plan, **context)
    if first.approved_plan is None:
        event("first approval refused")
        return
    fast_base = full_base = first.approved_plan
    for _ in range(data.draw(st.integers(1, 4), label="changes")):
        index = data.draw(st.integers(0, len(plan.channels) - 1), label="channel index")
        amplitude_ua = data.draw(
            amplitudes_around_bounds(fast_base.plan, index, context), label="amplitude_ua"
        )
        acknowledged = data.draw(
            st.frozensets(st.just(WarningCode.CURRENT_DENSITY_HIGH.value)), label="acknowledged"
        )
        event(f"base raised warnings: {bool(fast_base.acknowledged_warnings)}")
        event(f"channels: {len(plan.channels)}")

        fast = ENGINE.approve_change(
            fast_base,
            channel=plan.channels[index].channel,
            amplitude_ua=amplitude_ua,
            acknowledged_warnings=acknowledged,
        )
        full = full_approval_of_change(full_base, context, index, amplitude_ua, acknowledged)
        new_fields = unacknowledged_new_fields(full, full_base, acknowledged)
        if new_fields:
            # The full approval took the running plan's acknowledged codes for every field; a
            # live change carries them only to the fields they were raised on.
            event("change raises an acknowledged code on a new field")
            assert_refused_for_new_fields(fast, full, new_fields)
            continue

        assert_same_verdict(fast, full)
        event("change approved" if full.approved else "change refused")
        event(f"change layers refusing: {sorted({v.layer.value for v in full.violations})}")
        if fast.approved_plan is not None and full.approved_plan is not None:
            fast_base, full_base = fast.approved_plan, full.approved_plan


def dense_second_channel_approved() -> Verdict:
    """Two channels on 5 cm², the second past 2 mA/cm² (70 mA) with its warning acknowledged."""
    plan = make_plan(
        Modality.EMS,
        area_cm2=5.0,
        channels=[
            {"channel": 1, "amplitude_ua": 20_000, "pulse_width_us": 300, "frequency_hz": 50.0},
            {"channel": 2, "amplitude_ua": 70_000, "pulse_width_us": 300, "frequency_hz": 50.0},
        ],
    )
    return ENGINE.approve(plan, acknowledged_warnings={WarningCode.CURRENT_DENSITY_HIGH})


def test_an_acknowledged_warning_on_another_channel_stays_in_the_verdict_of_a_change() -> None:
    first = dense_second_channel_approved()
    assert first.approved_plan is not None
    assert [w.field for w in first.warnings] == ["dose.channels[1].current_density_ma_per_cm2"]

    change = ENGINE.approve_change(first.approved_plan, channel=1, amplitude_ua=25_000)

    assert change.approved
    assert [(w.field, w.acknowledged) for w in change.warnings] == [
        ("dose.channels[1].current_density_ma_per_cm2", True)
    ]
    assert change.approved_plan is not None
    assert change.approved_plan.acknowledged_warnings == {WarningCode.CURRENT_DENSITY_HIGH}


def test_a_warning_a_change_raises_on_another_channel_needs_its_own_acknowledgement() -> None:
    first = dense_second_channel_approved()
    assert first.approved_plan is not None
    density = "dose.channels[{}].current_density_ma_per_cm2"
    assert first.approved_plan.acknowledged_fields == {
        (WarningCode.CURRENT_DENSITY_HIGH, density.format(1))
    }

    # Channel 1 raised past 2 mA/cm² too: its electrode's density was never acknowledged.
    refused = ENGINE.approve_change(first.approved_plan, channel=1, amplitude_ua=70_000)

    assert not refused.approved
    assert [(w.field, w.acknowledged) for w in refused.warnings] == [
        (density.format(0), False),
        (density.format(1), True),
    ]
    assert refused.reasons == [refused.warnings[0].message]

    accepted = ENGINE.approve_change(
        first.approved_plan,
        channel=1,
        amplitude_ua=70_000,
        acknowledged_warnings={WarningCode.CURRENT_DENSITY_HIGH},
    )
    assert accepted.approved_plan is not None
    assert accepted.approved_plan.acknowledged_fields == {
        (WarningCode.CURRENT_DENSITY_HIGH, density.format(0)),
        (WarningCode.CURRENT_DENSITY_HIGH, density.format(1)),
    }


def test_a_change_leaves_the_other_channels_and_the_electrode_as_they_were() -> None:
    plan = make_plan(
        Modality.EMS,
        channels=[
            {"channel": 1, "amplitude_ua": 20_000, "pulse_width_us": 250, "frequency_hz": 50.0},
            {"channel": 3, "amplitude_ua": 30_000, "pulse_width_us": 200, "frequency_hz": 40.0},
        ],
    )
    first = ENGINE.approve(plan).approved_plan
    assert first is not None

    changed = ENGINE.approve_change(first, channel=3, amplitude_ua=32_000).approved_plan

    assert changed is not None
    assert changed.plan.channels[0] == plan.channels[0]
    assert changed.plan.channels[1].amplitude_ua == 32_000
    assert changed.plan.channels[1].pulse_width_us == 200
    assert changed.plan.electrode == plan.electrode
    assert changed.dose.channels[0] == first.dose.channels[0]
    assert changed.dose.channels[1].peak_voltage_v == pytest.approx(16.0)


def test_a_live_change_beyond_the_representable_amplitude_is_an_error_not_a_verdict() -> None:
    first = ENGINE.approve(make_plan(Modality.EMS)).approved_plan
    assert first is not None
    with pytest.raises(ValueError, match="amplitude_ua"):
        ENGINE.approve_change(first, channel=1, amplitude_ua=MAX_REPRESENTABLE_AMPLITUDE_UA + 1)
