"""ApprovedPlan can only come from the engine, cannot change, and live changes are re-approved."""

from __future__ import annotations

import copy
import pickle

import pytest

from sessionlog.safety import (
    ApprovedPlan,
    ClientContext,
    Layer,
    LimitsEngine,
    Modality,
    ModalityPolicy,
    Prescription,
    SitePolicy,
    ViolationCode,
    WarningCode,
)
from sessionlog.safety.dose import plan_dose

from .plans import make_plan, only, rehastim2_capabilities

ENGINE = LimitsEngine()


def _approved(**context: object) -> ApprovedPlan:
    verdict = ENGINE.approve(make_plan(Modality.EMS, amplitude_ua=20_000), **context)  # type: ignore[arg-type]
    assert verdict.approved_plan is not None
    return verdict.approved_plan


def test_approved_plan_cannot_be_constructed_outside_the_engine() -> None:
    plan = make_plan(Modality.EMS)
    with pytest.raises(TypeError, match="only by LimitsEngine"):
        ApprovedPlan(
            object(),
            plan=plan,
            dose=plan_dose(plan),
            layers=(Layer.STANDARD,),
            capabilities=None,
            site_policy=None,
            client=None,
            acknowledged_warnings=frozenset(),
        )


def test_approved_plan_is_immutable() -> None:
    approved = _approved()
    with pytest.raises(AttributeError):
        approved._plan = make_plan(Modality.EMS, amplitude_ua=119_000)
    with pytest.raises(AttributeError):
        del approved._plan


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, pickle.dumps])
def test_approved_plan_cannot_be_duplicated_around_the_engine(duplicate: object) -> None:
    with pytest.raises(TypeError):
        duplicate(_approved())  # type: ignore[operator]


def test_approved_plan_channels_cannot_be_replaced_or_added_after_approval() -> None:
    approved = _approved(client=ClientContext(prescription=Prescription(max_amplitude_ua=30_000)))
    louder = approved.plan.channels[0].model_copy(update={"amplitude_ua": 110_000})

    with pytest.raises(TypeError):
        approved.plan.channels[0] = louder  # type: ignore[index]
    with pytest.raises(AttributeError):
        approved.plan.channels.append(louder)  # type: ignore[attr-defined]
    assert approved.plan.channels[0].amplitude_ua == 20_000


def test_a_plan_parsed_from_a_list_of_channels_holds_them_as_a_tuple() -> None:
    plan = make_plan(Modality.EMS)
    reparsed = type(plan).model_validate(plan.model_dump())

    assert isinstance(reparsed.channels, tuple)
    assert reparsed == plan


def test_approved_plan_cannot_be_subclassed_to_forge_an_approval() -> None:
    with pytest.raises(TypeError, match="cannot be subclassed"):

        class Forged(ApprovedPlan):  # type: ignore[misc]
            __slots__ = ()


def test_refused_plan_has_no_approved_plan_and_verdict_serialises_without_it() -> None:
    verdict = ENGINE.approve(make_plan(Modality.EMS, amplitude_ua=130_000))

    assert verdict.approved_plan is None
    dumped = verdict.model_dump(mode="json")
    assert "approved_plan" not in dumped
    assert dumped["violations"][0]["layer"] == "standard"


def test_approved_plan_carries_the_plan_dose_and_context_it_was_checked_with() -> None:
    caps = rehastim2_capabilities()
    approved = _approved(capabilities=caps)

    assert approved.plan.channels[0].amplitude_ua == 20_000
    assert approved.dose == plan_dose(approved.plan)
    assert approved.capabilities == caps
    assert approved.layers == (Layer.STANDARD, Layer.DEVICE)


# --- live changes -------------------------------------------------------------------------------


def test_live_step_within_every_bound_is_approved_with_the_new_amplitude() -> None:
    approved = _approved(capabilities=rehastim2_capabilities())

    verdict = ENGINE.approve_change(approved, channel=1, amplitude_ua=25_000)

    assert verdict.approved
    assert verdict.approved_plan is not None
    assert verdict.approved_plan.plan.channels[0].amplitude_ua == 25_000
    assert verdict.approved_plan.capabilities == approved.capabilities
    assert approved.plan.channels[0].amplitude_ua == 20_000  # the original is untouched


def test_live_step_up_beyond_the_standard_bound_is_rejected() -> None:
    verdict = ENGINE.approve_change(_approved(), channel=1, amplitude_ua=121_000)

    assert not verdict.approved
    assert verdict.approved_plan is None
    assert only(verdict.violations, ViolationCode.AMPLITUDE_ABOVE_MAX).layer is Layer.STANDARD


def test_live_step_up_beyond_the_prescription_is_rejected_by_the_same_context() -> None:
    approved = _approved(
        site_policy=SitePolicy(ems=ModalityPolicy.model_validate({"max_amplitude_ma": 50})),
        client=ClientContext(prescription=Prescription.model_validate({"max_amplitude_ma": 30})),
    )

    within = ENGINE.approve_change(approved, channel=1, amplitude_ua=30_000)
    beyond = ENGINE.approve_change(approved, channel=1, amplitude_ua=31_000)

    assert within.approved
    violation = only(beyond.violations, ViolationCode.AMPLITUDE_ABOVE_MAX)
    assert violation.layer is Layer.PRESCRIPTION


def test_live_step_off_the_device_step_is_rejected() -> None:
    approved = _approved(capabilities=rehastim2_capabilities())
    verdict = ENGINE.approve_change(approved, channel=1, amplitude_ua=20_500)
    assert only(verdict.violations, ViolationCode.AMPLITUDE_NOT_ON_STEP).layer is Layer.DEVICE


def test_live_step_into_a_warning_needs_a_fresh_acknowledgement() -> None:
    plan = make_plan(Modality.EMS, amplitude_ua=20_000, pulse_width_us=300, area_cm2=5.0)
    approved = ENGINE.approve(plan).approved_plan
    assert approved is not None

    unacknowledged = ENGINE.approve_change(approved, channel=1, amplitude_ua=60_000)
    acknowledged = ENGINE.approve_change(
        approved, channel=1, amplitude_ua=60_000, acknowledged_warnings={"current_density_high"}
    )

    assert not unacknowledged.approved
    assert acknowledged.approved


def test_live_step_down_within_an_acknowledged_warning_stays_approved() -> None:
    plan = make_plan(Modality.EMS, amplitude_ua=70_000, pulse_width_us=300, area_cm2=5.0)
    first = ENGINE.approve(plan, acknowledged_warnings={WarningCode.CURRENT_DENSITY_HIGH})
    assert first.approved_plan is not None

    verdict = ENGINE.approve_change(first.approved_plan, channel=1, amplitude_ua=60_000)

    assert verdict.approved
    assert verdict.warnings[0].acknowledged


def test_live_change_on_a_channel_not_in_the_plan_is_an_error() -> None:
    with pytest.raises(ValueError, match="channel 2 is not in the approved plan"):
        ENGINE.approve_change(_approved(), channel=2, amplitude_ua=20_000)


def test_live_change_to_a_negative_amplitude_is_an_error() -> None:
    with pytest.raises(ValueError, match="amplitude_ua"):
        ENGINE.approve_change(_approved(), channel=1, amplitude_ua=-1)


def test_live_change_amplitude_must_be_an_integer_number_of_microamperes() -> None:
    with pytest.raises(TypeError):
        ENGINE.approve_change(_approved(), channel=1, amplitude_ua=20.5)  # type: ignore[arg-type]
