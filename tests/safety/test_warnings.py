"""Warnings (current density above 2 mA/cm²) block approval until explicitly acknowledged."""

from __future__ import annotations

import pytest

from sessionlog.safety import (
    Layer,
    LimitsEngine,
    Modality,
    SitePolicy,
    StimulationPlan,
    WarningCode,
)

from .plans import make_plan

ENGINE = LimitsEngine()


def _plan_at_density_area(modality: Modality, area_cm2: float) -> StimulationPlan:
    """40 mA, biphasic 250 µs at 125 Hz (duty 1/16): 10 mA rms, i.e. 2 mA/cm² over 5 cm²."""
    return make_plan(
        modality,
        amplitude_ua=40_000,
        pulse_width_us=250,
        frequency_hz=125.0,
        area_cm2=area_cm2,
    )


@pytest.mark.parametrize("modality", [Modality.EMS, Modality.MICROCURRENT])
@pytest.mark.parametrize(("area_cm2", "warns"), [(5.0, False), (5.001, False), (4.999, True)])
def test_current_density_warning_starts_just_above_2_ma_per_cm2(
    modality: Modality, area_cm2: float, warns: bool
) -> None:
    verdict = ENGINE.approve(_plan_at_density_area(modality, area_cm2))

    raised = [w for w in verdict.warnings if w.code is WarningCode.CURRENT_DENSITY_HIGH]
    assert bool(raised) is warns
    if warns:
        assert raised[0].threshold == 2.0
        assert raised[0].layer is Layer.STANDARD
        assert raised[0].source is not None


def test_current_density_above_2_ma_per_cm2_blocks_approval_until_acknowledged() -> None:
    plan = make_plan(Modality.EMS, amplitude_ua=60_000, pulse_width_us=300, area_cm2=5.0)

    unacknowledged = ENGINE.approve(plan)
    acknowledged = ENGINE.approve(plan, acknowledged_warnings={"current_density_high"})

    assert unacknowledged.violations == ()
    assert not unacknowledged.approved
    assert unacknowledged.approved_plan is None
    (warning,) = unacknowledged.warnings
    assert not warning.acknowledged
    assert warning.field == "dose.channels[0].current_density_ma_per_cm2"
    assert warning.value == pytest.approx(60 * (600 * 50 / 1e6) ** 0.5 / 5.0)
    assert "acknowledgement" in warning.message

    assert acknowledged.approved
    assert acknowledged.warnings[0].acknowledged
    assert acknowledged.approved_plan is not None
    assert acknowledged.approved_plan.acknowledged_warnings == {WarningCode.CURRENT_DENSITY_HIGH}


def test_acknowledging_an_unrelated_code_does_not_clear_the_warning() -> None:
    plan = make_plan(Modality.EMS, amplitude_ua=60_000, pulse_width_us=300, area_cm2=5.0)
    verdict = ENGINE.approve(plan, acknowledged_warnings={"something_else"})
    assert not verdict.approved


def test_acknowledgement_of_a_warning_that_was_not_raised_is_not_recorded() -> None:
    verdict = ENGINE.approve(
        make_plan(Modality.EMS), acknowledged_warnings={"current_density_high"}
    )
    assert verdict.approved
    assert verdict.approved_plan is not None
    assert verdict.approved_plan.acknowledged_warnings == frozenset()


def test_site_that_forbids_acknowledgements_blocks_a_plan_with_a_warning() -> None:
    plan = make_plan(Modality.EMS, amplitude_ua=60_000, pulse_width_us=300, area_cm2=5.0)
    policy = SitePolicy(warnings_acknowledgeable=False)

    verdict = ENGINE.approve(
        plan, site_policy=policy, acknowledged_warnings={"current_density_high"}
    )

    assert not verdict.approved
    assert not verdict.warnings[0].acknowledged
    assert "does not allow" in verdict.warnings[0].message
    assert verdict.reasons == [verdict.warnings[0].message]
