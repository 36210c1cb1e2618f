"""Amplitude ranges: the amplitudes of a channel every layer accepts, found by the checks.

``LimitsEngine.approve_change`` approves a live change inside the channel's range without
running the checks again, so a range that admitted one amplitude too many would let a change
past a limit. These tests hold every range to the full approval of the changed plan at every
amplitude around its edges and at random amplitudes inside and outside it, over generated plans
and every combination of layers; the search itself is held to predicates with known edges.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sessionlog.safety import (
    ApprovedPlan,
    DeviceCapabilities,
    LimitsEngine,
    Modality,
    ModalityCapabilities,
    Prescription,
    StimulationPlan,
    WarningCode,
)
from sessionlog.safety.amplitude_range import AmplitudeRange, search_range
from sessionlog.safety.plan import MAX_REPRESENTABLE_AMPLITUDE_UA
from sessionlog.safety.screening import ClientContext

from .plans import make_plan
from .test_live_change_equivalence import running_plans

ENGINE = LimitsEngine()


def _full_approval_passes(
    approved: ApprovedPlan, context: dict[str, Any], index: int, amplitude_ua: int
) -> bool:
    """Whether ``approve`` passes the changed plan, parsed from scratch, with no finding at all."""
    data = approved.plan.model_dump()
    data["channels"][index]["amplitude_ua"] = amplitude_ua
    verdict = ENGINE.approve(
        StimulationPlan.model_validate(data),
        capabilities=context["capabilities"],
        site_policy=context["site_policy"],
        client=context["client"],
    )
    return verdict.approved and not verdict.violations and not verdict.warnings


def _probe_amplitudes(allowed: AmplitudeRange, data: st.DataObject) -> set[int]:
    """Both sides of each edge (on and off the step), zero, and random amplitudes anywhere."""
    step = allowed.step_ua
    edges = {0, allowed.floor_ua, allowed.ceiling_ua}
    probes = {edge + offset for edge in edges for offset in (-step, -1, 0, 1, step)}
    probes |= set(
        data.draw(
            st.lists(st.integers(0, MAX_REPRESENTABLE_AMPLITUDE_UA), max_size=8), label="random"
        )
    )
    if allowed.above_zero:
        inside = st.integers(allowed.floor_ua // step, allowed.ceiling_ua // step)
        probes |= {k * step for k in data.draw(st.lists(inside, max_size=8), label="inside")}
    return {a for a in probes if 0 <= a <= MAX_REPRESENTABLE_AMPLITUDE_UA}


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(scenario=running_plans(), data=st.data())
def test_a_range_admits_exactly_the_amplitudes_a_full_approval_passes(
    scenario: tuple[StimulationPlan, dict[str, Any]], data: st.DataObject
) -> None:
    plan, context = scenario
    approved = ENGINE.approve(plan, **context).approved_plan
    if approved is None:
        event("first approval refused")
        return
    index = data.draw(st.integers(0, len(plan.channels) - 1), label="channel index")
    allowed = ENGINE.amplitude_range(approved, channel=plan.channels[index].channel)
    if allowed is None:
        assert approved.acknowledged_warnings, "only an approval with warnings has no range"
        event("approval raised warnings: no range")
        return
    # A range is searched for on both sides of an amplitude known to pass: the channel's approved
    # one, or for a channel approved at zero the first step above the stated lower bounds, if
    # that passes. Without one the range admits zero at most, which is sound but not exact.
    anchored = plan.channels[index].amplitude_ua > 0 or allowed.above_zero
    event("anchored" if anchored else "no amplitude above zero known to pass")
    for amplitude_ua in sorted(_probe_amplitudes(allowed, data)):
        expected = _full_approval_passes(approved, context, index, amplitude_ua)
        if anchored or amplitude_ua == 0:
            assert allowed.admits(amplitude_ua) == expected, (amplitude_ua, allowed)
        else:
            assert not allowed.admits(amplitude_ua), (amplitude_ua, allowed)


def test_the_range_runs_from_the_device_minimum_to_the_tightest_ceiling_on_the_step() -> None:
    capabilities = DeviceCapabilities(
        model_name="stepped",
        channel_count=2,
        modalities={
            Modality.EMS: ModalityCapabilities(
                amplitude_min_ua=4_000,
                amplitude_max_ua=100_000,
                amplitude_step_ua=500,
                pulse_width_min_us=20,
                pulse_width_max_us=1000,
                frequency_min_hz=1.0,
                frequency_max_hz=200.0,
            )
        },
    )
    client = ClientContext(prescription=Prescription(max_amplitude_ua=42_750))
    approved = ENGINE.approve(
        make_plan(Modality.EMS, amplitude_ua=20_000), capabilities=capabilities, client=client
    ).approved_plan
    assert approved is not None

    allowed = ENGINE.amplitude_range(approved, channel=1)

    # 42 500 is the last multiple of the 500 µA step within the 42 750 µA prescription.
    assert allowed == AmplitudeRange(
        zero_passes=False, floor_ua=4_000, ceiling_ua=42_500, step_ua=500
    )
    for amplitude_ua, admitted in ((42_500, True), (43_000, False), (20_250, False)):
        verdict = ENGINE.approve_change(approved, channel=1, amplitude_ua=amplitude_ua)
        assert verdict.approved is admitted


def test_a_change_inside_the_range_carries_its_dose_and_the_range_on() -> None:
    approved = ENGINE.approve(make_plan(Modality.EMS, amplitude_ua=20_000)).approved_plan
    assert approved is not None

    first = ENGINE.approve_change(approved, channel=1, amplitude_ua=30_000)
    assert first.approved_plan is not None
    second = ENGINE.approve_change(first.approved_plan, channel=1, amplitude_ua=31_000)

    assert second.approved_plan is not None
    assert second.approved_plan.plan.channels[0].amplitude_ua == 31_000
    full = ENGINE.approve(second.approved_plan.plan)
    assert second.dose == full.dose == second.approved_plan.dose
    assert second.model_dump(mode="json") == full.model_dump(mode="json")
    assert ENGINE.amplitude_range(second.approved_plan, channel=1) == ENGINE.amplitude_range(
        approved, channel=1
    )


def test_a_change_outside_the_range_is_refused_with_the_layer_and_bound() -> None:
    client = ClientContext(prescription=Prescription(max_amplitude_ua=30_000))
    approved = ENGINE.approve(
        make_plan(Modality.EMS, amplitude_ua=20_000), client=client
    ).approved_plan
    assert approved is not None

    verdict = ENGINE.approve_change(approved, channel=1, amplitude_ua=30_001)

    assert not verdict.approved
    assert [(v.layer, v.field, v.value, v.bound) for v in verdict.violations] == [
        ("prescription", "channels[0].amplitude_ua", 30_001, 30_000)
    ]


def test_an_approval_with_an_acknowledged_warning_has_no_range() -> None:
    plan = make_plan(Modality.EMS, amplitude_ua=70_000, area_cm2=5.0)
    approved = ENGINE.approve(
        plan, acknowledged_warnings={WarningCode.CURRENT_DENSITY_HIGH}
    ).approved_plan
    assert approved is not None
    assert approved.acknowledged_warnings

    assert ENGINE.amplitude_range(approved, channel=1) is None


def test_a_range_of_a_channel_not_in_the_plan_is_an_error() -> None:
    approved = ENGINE.approve(make_plan(Modality.EMS)).approved_plan
    assert approved is not None
    with pytest.raises(ValueError, match="channel 9"):
        ENGINE.amplitude_range(approved, channel=9)


# --- the search on its own ----------------------------------------------------------------------


def _window(low: int, high: int, step: int, *, zero: bool = False) -> Any:
    def passes(amplitude_ua: int) -> bool:
        if amplitude_ua == 0:
            return zero
        return low <= amplitude_ua <= high and amplitude_ua % step == 0

    return passes


@given(
    step=st.sampled_from([1, 7, 10, 1000]),
    low=st.integers(1, 50_000),
    width=st.integers(0, 50_000),
    zero=st.booleans(),
    data=st.data(),
)
def test_the_search_finds_both_edges_of_any_window(
    step: int, low: int, width: int, zero: bool, data: st.DataObject
) -> None:
    high = low + width
    first, last = -(-low // step), high // step
    if first > last:
        return
    anchor = data.draw(st.integers(first, last), label="anchor") * step

    allowed = search_range(
        _window(low, high, step, zero=zero), anchor_ua=anchor, step_ua=step, max_ua=200_000
    )

    assert allowed == AmplitudeRange(
        zero_passes=zero, floor_ua=first * step, ceiling_ua=last * step, step_ua=step
    )


def test_the_search_stops_at_the_representable_maximum() -> None:
    allowed = search_range(lambda a: a > 0, anchor_ua=5, step_ua=1, max_ua=1000)
    assert (allowed.floor_ua, allowed.ceiling_ua) == (1, 1000)


@pytest.mark.parametrize("anchor", [0, 15, 20])
@pytest.mark.parametrize("zero", [False, True])
def test_without_a_passing_anchor_on_the_step_the_range_admits_zero_at_most(
    anchor: int, zero: bool
) -> None:
    # 0 is no anchor, 15 is off the step of 10, 20 fails the predicate.
    allowed = search_range(
        _window(30, 90, 10, zero=zero), anchor_ua=anchor, step_ua=10, max_ua=1000
    )
    assert [a for a in range(0, 1001) if allowed.admits(a)] == ([0] if zero else [])


def test_a_context_searches_ranges_only_for_its_own_approvals() -> None:
    # A range found for another context (here: without the 30 mA prescription) would let a
    # change past that context's limits, so a context refuses to search for a foreign approval.
    limited = ENGINE.approve(
        make_plan(Modality.EMS, amplitude_ua=20_000),
        client=ClientContext(prescription=Prescription(max_amplitude_ua=30_000)),
    ).approved_plan
    unlimited = ENGINE.approve(make_plan(Modality.EMS, amplitude_ua=20_000)).approved_plan
    assert limited is not None
    assert unlimited is not None
    context = limited._live_changes
    assert context is not None

    with pytest.raises(ValueError, match="not one of this context's"):
        context.range_of(unlimited, 0)
    assert ENGINE.approve_change(limited, channel=1, amplitude_ua=30_001).approved is False


def test_a_channel_approved_at_zero_gets_the_range_it_may_be_turned_up_through() -> None:
    approved = ENGINE.approve(
        make_plan(Modality.EMS, amplitude_ua=0),
        client=ClientContext(prescription=Prescription(max_amplitude_ua=25_000)),
    ).approved_plan
    assert approved is not None

    allowed = ENGINE.amplitude_range(approved, channel=1)

    # Up from zero: the EMS standard's 1 mA unit guard is the floor, the prescription the ceiling.
    assert allowed == AmplitudeRange(zero_passes=True, floor_ua=1000, ceiling_ua=25_000, step_ua=1)
    assert ENGINE.approve_change(approved, channel=1, amplitude_ua=25_000).approved
    assert not ENGINE.approve_change(approved, channel=1, amplitude_ua=25_001).approved
