"""Every standard-profile bound, for both modalities: at the bound, just inside and just outside.

Values are chosen so that the dose figures come out exactly at the bound in binary floating point
(duty fractions of 1/4 and 1/32, areas that divide evenly), so "at the bound" really is at it.
Each case asserts only on its own check; a plan built to reach one bound may break others too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from sessionlog.safety import (
    EMS_PROFILE,
    MICROCURRENT_PROFILE,
    ChannelPlan,
    Layer,
    Modality,
    StimulationPlan,
    ViolationCode,
    check_standard,
)

from .plans import codes, make_plan, only

EMS = Modality.EMS
MC = Modality.MICROCURRENT
C = ViolationCode


@dataclass(frozen=True)
class BoundCase:
    name: str
    modality: Modality
    code: ViolationCode
    bound: float
    at: dict[str, Any]
    inside: dict[str, Any]
    outside: dict[str, Any] | None
    common: dict[str, Any] = field(default_factory=dict)

    def plan(self, which: dict[str, Any]) -> StimulationPlan:
        return make_plan(self.modality, **{**self.common, **which})


# Duty 0.25 (biphasic 1250 µs at 100 Hz): I_rms = I / 2. 100 mA → 50 mA rms → 1.25 W over 5 cm².
_QUARTER_DUTY = {"pulse_width_us": 1250, "frequency_hz": 100.0, "amplitude_ua": 100_000}
# 1 A monophasic: (1 A)² × 500 Ω × 600 µs = 300 mJ.
_ONE_AMP_MONO = {"amplitude_ua": 1_000_000, "phase_type": "monophasic", "frequency_hz": 1.0}
# Monophasic 250 µs at 125 Hz (duty 1/32): 6.4 mA gives 200 µA DC.
_DC_MONO = {
    "amplitude_ua": 6400,
    "phase_type": "monophasic",
    "pulse_width_us": 250,
    "frequency_hz": 125.0,
}


def _shared_cases(modality: Modality) -> list[BoundCase]:
    tag = modality.value
    profile = EMS_PROFILE if modality is EMS else MICROCURRENT_PROFILE
    return [
        BoundCase(
            f"{tag}-pulse-energy-300-mJ",
            modality,
            C.PULSE_ENERGY_ABOVE_MAX,
            300,
            at={"pulse_width_us": 600},
            inside={"pulse_width_us": 599},
            outside={"pulse_width_us": 601},
            common=_ONE_AMP_MONO,
        ),
        BoundCase(
            f"{tag}-peak-voltage-500-V",
            modality,
            C.PEAK_VOLTAGE_ABOVE_MAX,
            500,
            at={"amplitude_ua": 1_000_000},
            inside={"amplitude_ua": 999_999},
            outside=None,  # 1 A is the largest representable amplitude: see the test below
        ),
        BoundCase(
            f"{tag}-power-density-0.25-W-per-cm2",
            modality,
            C.POWER_DENSITY_ABOVE_MAX,
            0.25,
            at={"area_cm2": 5.0},
            inside={"area_cm2": 5.001},
            outside={"area_cm2": 4.999},
            common=_QUARTER_DUTY,
        ),
        BoundCase(
            f"{tag}-ramp-up-10-s",
            modality,
            C.RAMP_ABOVE_MAX,
            10.0,
            at={"ramp_up_s": 10.0},
            inside={"ramp_up_s": 9.99},
            outside={"ramp_up_s": 10.01},
        ),
        BoundCase(
            f"{tag}-ramp-down-10-s",
            modality,
            C.RAMP_ABOVE_MAX,
            10.0,
            at={"ramp_down_s": 10.0},
            inside={"ramp_down_s": 9.99},
            outside={"ramp_down_s": 10.01},
        ),
        BoundCase(
            f"{tag}-duration-3600-s",
            modality,
            C.DURATION_ABOVE_MAX,
            3600,
            at={"duration_s": 3600},
            inside={"duration_s": 3599},
            outside={"duration_s": 3601},
        ),
        BoundCase(
            f"{tag}-pulse-width-min",
            modality,
            C.PULSE_WIDTH_BELOW_MIN,
            profile.min_pulse_width_us.value,
            at={"pulse_width_us": profile.min_pulse_width_us.value},
            inside={"pulse_width_us": profile.min_pulse_width_us.value + 1},
            outside={"pulse_width_us": profile.min_pulse_width_us.value - 1},
        ),
        BoundCase(
            f"{tag}-pulse-width-max",
            modality,
            C.PULSE_WIDTH_ABOVE_MAX,
            profile.max_pulse_width_us.value,
            at={"pulse_width_us": profile.max_pulse_width_us.value},
            inside={"pulse_width_us": profile.max_pulse_width_us.value - 1},
            outside={"pulse_width_us": profile.max_pulse_width_us.value + 1},
            common={"frequency_hz": profile.min_frequency_hz.value},
        ),
    ]


CASES: list[BoundCase] = [
    *_shared_cases(EMS),
    *_shared_cases(MC),
    BoundCase(
        "ems-amplitude-120-mA",
        EMS,
        C.AMPLITUDE_ABOVE_MAX,
        120_000,
        at={"amplitude_ua": 120_000},
        inside={"amplitude_ua": 119_999},
        outside={"amplitude_ua": 120_001},
    ),
    BoundCase(
        "ems-unit-guard-1-mA",
        EMS,
        C.UNIT_MIXUP,
        1000,
        at={"amplitude_ua": 1000},
        inside={"amplitude_ua": 1001},
        outside={"amplitude_ua": 999},
    ),
    BoundCase(
        "ems-rms-50-mA",
        EMS,
        C.RMS_CURRENT_ABOVE_MAX,
        50_000,
        at={"amplitude_ua": 100_000},
        inside={"amplitude_ua": 99_999},
        outside={"amplitude_ua": 100_001},
        common={**_QUARTER_DUTY, "area_cm2": 1000.0},
    ),
    BoundCase(
        "ems-dc-density-0.2-mA-per-cm2",
        EMS,
        C.DC_CURRENT_DENSITY_ABOVE_MAX,
        0.2,
        at={"area_cm2": 1.0},
        inside={"area_cm2": 1.001},
        outside={"area_cm2": 0.999},
        common=_DC_MONO,
    ),
    BoundCase(
        "ems-frequency-1-Hz",
        EMS,
        C.FREQUENCY_BELOW_MIN,
        1.0,
        at={"frequency_hz": 1.0},
        inside={"frequency_hz": 1.01},
        outside={"frequency_hz": 0.99},
    ),
    BoundCase(
        "ems-frequency-150-Hz",
        EMS,
        C.FREQUENCY_ABOVE_MAX,
        150.0,
        at={"frequency_hz": 150.0},
        inside={"frequency_hz": 149.99},
        outside={"frequency_hz": 150.01},
    ),
    BoundCase(
        "microcurrent-amplitude-999-uA",
        MC,
        C.AMPLITUDE_ABOVE_MAX,
        999,
        at={"amplitude_ua": 999},
        inside={"amplitude_ua": 998},
        outside={"amplitude_ua": 1000},
    ),
    BoundCase(
        "microcurrent-dc-amplitude-100-uA",
        MC,
        C.DC_AMPLITUDE_ABOVE_MAX,
        100,
        at={"amplitude_ua": 100},
        inside={"amplitude_ua": 99},
        outside={"amplitude_ua": 101},
        common={"waveform": "dc"},
    ),
    BoundCase(
        # One-way pulses at half duty carry half their amplitude as DC: the DC bound holds for
        # it whatever the waveform is called.
        "microcurrent-dc-component-of-monophasic-pulses-100-uA",
        MC,
        C.DC_AMPLITUDE_ABOVE_MAX,
        100,
        at={"amplitude_ua": 200},
        inside={"amplitude_ua": 198},
        outside={"amplitude_ua": 202},
        common={
            "phase_type": "monophasic",
            "polarity": "positive",
            "pulse_width_us": 500_000,
            "frequency_hz": 1.0,
        },
    ),
    BoundCase(
        # At a duty of 1 one-way pulses are DC outright, so they meet the DC waveform's bound.
        "microcurrent-monophasic-pulses-at-full-duty-are-dc-100-uA",
        MC,
        C.DC_AMPLITUDE_ABOVE_MAX,
        100,
        at={"amplitude_ua": 100},
        inside={"amplitude_ua": 99},
        outside={"amplitude_ua": 101},
        common={
            "phase_type": "monophasic",
            "polarity": "positive",
            "pulse_width_us": 1_000_000,
            "frequency_hz": 1.0,
        },
    ),
    BoundCase(
        "microcurrent-dc-density-0.2-mA-per-cm2",
        MC,
        C.DC_CURRENT_DENSITY_ABOVE_MAX,
        0.2,
        at={"area_cm2": 0.5},
        inside={"area_cm2": 0.5001},
        outside={"area_cm2": 0.4999},
        common={"waveform": "dc", "amplitude_ua": 100},
    ),
    BoundCase(
        "microcurrent-frequency-0.1-Hz",
        MC,
        C.FREQUENCY_BELOW_MIN,
        0.1,
        at={"frequency_hz": 0.1},
        inside={"frequency_hz": 0.11},
        outside={"frequency_hz": 0.09},
    ),
    BoundCase(
        "microcurrent-frequency-1000-Hz",
        MC,
        C.FREQUENCY_ABOVE_MAX,
        1000.0,
        at={"frequency_hz": 1000.0},
        inside={"frequency_hz": 999.9},
        outside={"frequency_hz": 1000.1},
        common={"pulse_width_us": 100},
    ),
]
_IDS = [case.name for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_value_at_the_standard_bound_passes_that_check(case: BoundCase) -> None:
    assert case.code not in codes(check_standard(case.plan(case.at)))


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_value_just_inside_the_standard_bound_passes_that_check(case: BoundCase) -> None:
    assert case.code not in codes(check_standard(case.plan(case.inside)))


@pytest.mark.parametrize("case", [c for c in CASES if c.outside is not None], ids=lambda c: c.name)
def test_value_just_outside_the_standard_bound_is_rejected_citing_its_source(
    case: BoundCase,
) -> None:
    assert case.outside is not None
    violation = only(check_standard(case.plan(case.outside)), case.code)

    assert violation.layer is Layer.STANDARD
    assert violation.bound == case.bound
    assert violation.source
    assert str(violation.value) != ""
    assert violation.message.endswith(".")


def test_peak_voltage_bound_is_unreachable_because_plans_stop_at_1_a() -> None:
    with pytest.raises(ValidationError):
        make_plan(EMS, amplitude_ua=1_000_001)


def test_peak_voltage_check_rejects_a_plan_built_without_validation_above_500_v() -> None:
    valid = make_plan(EMS)
    channel = ChannelPlan.model_construct(
        **{**valid.channels[0].model_dump(), "amplitude_ua": 1_000_002}
    )
    plan = StimulationPlan.model_construct(**{**dict(valid), "channels": [channel]})

    violation = only(check_standard(plan), C.PEAK_VOLTAGE_ABOVE_MAX)

    assert violation.value == pytest.approx(500.001)
    assert "500 V" in violation.message


@pytest.mark.parametrize("modality", [EMS, MC])
def test_baseline_plans_pass_the_standard_layer(modality: Modality) -> None:
    assert check_standard(make_plan(modality)) == []


@pytest.mark.parametrize("modality", [EMS, MC])
def test_pulse_longer_than_its_period_is_rejected(modality: Modality) -> None:
    # Biphasic 2 × 600 µs = 1.2 ms cannot repeat every 1 ms (1000 Hz).
    violation = only(
        check_standard(make_plan(modality, pulse_width_us=600, frequency_hz=1000.0)),
        C.PULSE_LONGER_THAN_PERIOD,
    )
    assert violation.value == 1200
    assert violation.bound == pytest.approx(1000.0)


@pytest.mark.parametrize("modality", [EMS, MC])
def test_pulse_filling_exactly_its_period_is_deliverable(modality: Modality) -> None:
    plan = make_plan(modality, pulse_width_us=500, frequency_hz=1000.0)
    assert C.PULSE_LONGER_THAN_PERIOD not in codes(check_standard(plan))


@pytest.mark.parametrize("modality", [EMS, MC])
def test_ramps_longer_than_the_on_period_are_rejected(modality: Modality) -> None:
    plan = make_plan(modality, on_time_s=5.0, off_time_s=5.0, ramp_up_s=3.0, ramp_down_s=2.5)
    violation = only(check_standard(plan), C.RAMPS_LONGER_THAN_ON_PERIOD)
    assert violation.value == pytest.approx(5.5)
    assert violation.bound == pytest.approx(5.0)


@pytest.mark.parametrize("modality", [EMS, MC])
def test_ramps_that_fill_the_on_period_exactly_are_allowed(modality: Modality) -> None:
    plan = make_plan(modality, on_time_s=5.0, off_time_s=5.0, ramp_up_s=2.5, ramp_down_s=2.5)
    assert C.RAMPS_LONGER_THAN_ON_PERIOD not in codes(check_standard(plan))


def test_all_violations_are_collected_not_only_the_first() -> None:
    plan = make_plan(
        EMS,
        amplitude_ua=130_000,
        pulse_width_us=700,
        frequency_hz=200.0,
        duration_s=4000,
        body_site="eyes",
    )
    assert {
        C.AMPLITUDE_ABOVE_MAX,
        C.PULSE_WIDTH_ABOVE_MAX,
        C.FREQUENCY_ABOVE_MAX,
        C.DURATION_ABOVE_MAX,
        C.BODY_SITE_FORBIDDEN,
    } <= codes(check_standard(plan))


def test_a_zero_amplitude_ems_plan_is_not_a_unit_mixup() -> None:
    assert C.UNIT_MIXUP not in codes(check_standard(make_plan(EMS, amplitude_ua=0)))


def test_violation_message_names_value_and_bound_with_units() -> None:
    violation = only(check_standard(make_plan(EMS, amplitude_ua=125_000)), C.AMPLITUDE_ABOVE_MAX)
    assert violation.field == "channels[0].amplitude_ua"
    assert violation.value == 125_000
    assert "125 mA" in violation.message
    assert "120 mA" in violation.message
    assert "EMS standard" in violation.message
