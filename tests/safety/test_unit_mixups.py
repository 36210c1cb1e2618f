"""µA/mA mix-ups (a 1000× error) are refused with a reason that names the likely mistake."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sessionlog.safety import LimitsEngine, Modality, Prescription, ViolationCode

from .plans import codes, make_plan, only

ENGINE = LimitsEngine()


def test_microcurrent_amplitude_given_as_500_ma_instead_of_500_ua_is_rejected_as_mixup() -> None:
    verdict = ENGINE.approve(make_plan(Modality.MICROCURRENT, amplitude_ma=500))

    assert not verdict.approved
    violation = only(verdict.violations, ViolationCode.AMPLITUDE_ABOVE_MAX)
    assert violation.value == 500_000
    assert violation.bound == 999
    assert "mix-up" in violation.message
    assert "amplitude_ua=500" in violation.message


def test_microcurrent_plan_over_999_ua_is_rejected_by_standard_layer() -> None:
    verdict = ENGINE.approve(make_plan(Modality.MICROCURRENT, amplitude_ua=1000))

    violation = only(verdict.violations, ViolationCode.AMPLITUDE_ABOVE_MAX)
    assert violation.layer == "standard"
    assert "below 1 mA" in violation.message


def test_microcurrent_amplitude_of_0_5_ma_is_the_same_as_500_ua_and_approved() -> None:
    by_ma = ENGINE.approve(make_plan(Modality.MICROCURRENT, amplitude_ma=0.5))
    by_ua = ENGINE.approve(make_plan(Modality.MICROCURRENT, amplitude_ua=500))

    assert by_ma.approved
    assert by_ua.approved
    assert by_ma.dose == by_ua.dose


def test_ems_amplitude_ua_30_meaning_30_ma_is_rejected_with_the_mixup_reason() -> None:
    verdict = ENGINE.approve(make_plan(Modality.EMS, amplitude_ua=30))

    assert not verdict.approved
    violation = only(verdict.violations, ViolationCode.UNIT_MIXUP)
    assert violation.field == "channels[0].amplitude_ua"
    assert violation.value == 30
    assert "mA given as µA" in violation.message
    assert "amplitude_ma=30" in violation.message


@pytest.mark.parametrize("amplitude_ma", [0.5, 0.2])
def test_a_sub_ma_ems_amplitude_never_suggests_a_reading_above_the_ems_maximum(
    amplitude_ma: float,
) -> None:
    verdict = ENGINE.approve(make_plan(Modality.EMS, amplitude_ma=amplitude_ma))

    violation = only(verdict.violations, ViolationCode.UNIT_MIXUP)
    amplitude_ua = round(amplitude_ma * 1000)
    assert f"amplitude_ma={amplitude_ua}" not in violation.message
    assert f"{amplitude_ua} mA" not in violation.message
    assert "Check the unit" in violation.message


def test_ems_amplitude_ma_30_is_approved() -> None:
    verdict = ENGINE.approve(make_plan(Modality.EMS, amplitude_ma=30))

    assert verdict.approved
    assert verdict.dose.channels[0].peak_voltage_v == pytest.approx(15.0)


@pytest.mark.parametrize("amplitude_ua", [1, 500, 999])
def test_every_nonzero_ems_amplitude_below_1_ma_is_a_unit_mixup(amplitude_ua: int) -> None:
    assert ViolationCode.UNIT_MIXUP in codes(
        ENGINE.approve(make_plan(Modality.EMS, amplitude_ua=amplitude_ua))
    )


def test_ems_amplitude_given_in_ua_as_120000_is_the_same_as_120_ma() -> None:
    assert ENGINE.approve(make_plan(Modality.EMS, amplitude_ua=120_000)).approved
    assert ENGINE.approve(make_plan(Modality.EMS, amplitude_ma=120)).approved


def test_a_plan_giving_the_amplitude_in_both_units_is_not_a_plan() -> None:
    with pytest.raises(ValidationError, match="not both"):
        make_plan(Modality.EMS, amplitude_ma=30, amplitude_ua=30_000)


@pytest.mark.parametrize("amplitude_ma", [1e306, 10**400, 1001])
def test_an_amplitude_in_ma_too_large_to_mean_anything_is_a_validation_error(
    amplitude_ma: float,
) -> None:
    with pytest.raises(ValidationError, match="at most 1000 mA"):
        make_plan(Modality.EMS, amplitude_ma=amplitude_ma)


@pytest.mark.parametrize("amplitude_ma", [-1e-10, -0.0004, -1])
def test_a_negative_amplitude_in_ma_is_refused_even_when_it_rounds_to_zero(
    amplitude_ma: float,
) -> None:
    with pytest.raises(ValidationError, match="must not be negative"):
        make_plan(Modality.EMS, amplitude_ma=amplitude_ma)


def test_a_boolean_is_not_an_amplitude_in_ua() -> None:
    with pytest.raises(ValidationError, match="not a boolean"):
        make_plan(Modality.MICROCURRENT, amplitude_ua=True)


@pytest.mark.parametrize("ceiling", [{"max_amplitude_ma": 300}, {"max_amplitude_ua": 1000}])
def test_a_microcurrent_prescription_ceiling_of_1_ma_or_more_is_a_mixup(
    ceiling: dict[str, int],
) -> None:
    with pytest.raises(ValidationError, match="most likely a value in µA given in mA"):
        Prescription.model_validate({"modalities": ["microcurrent"], **ceiling})


def test_a_prescription_ceiling_for_both_modalities_may_be_in_the_ems_range() -> None:
    prescription = Prescription.model_validate(
        {"modalities": ["ems", "microcurrent"], "max_amplitude_ma": 30}
    )
    assert prescription.max_amplitude_ua == 30_000
    assert (
        Prescription.model_validate(
            {"modalities": ["microcurrent"], "max_amplitude_ua": 999}
        ).max_amplitude_ua
        == 999
    )
