"""Layers apply in order (standard, device, site, prescription) and the most restrictive wins."""

from __future__ import annotations

from typing import Any

import pytest

from sessionlog.safety import (
    ClientContext,
    Layer,
    LimitsEngine,
    Modality,
    ModalityCapabilities,
    ModalityPolicy,
    PhaseType,
    Prescription,
    SitePolicy,
    ViolationCode,
    Waveform,
)

from .plans import codes, dual_modality_capabilities, make_plan, only, rehastim2_capabilities

ENGINE = LimitsEngine()
EMS = Modality.EMS
MC = Modality.MICROCURRENT


# --- device layer -------------------------------------------------------------------------------


def test_device_range_narrower_than_standard_wins() -> None:
    caps = dual_modality_capabilities(
        modalities={
            EMS: ModalityCapabilities(
                amplitude_max_ua=80_000,
                pulse_width_min_us=20,
                pulse_width_max_us=600,
                frequency_min_hz=1.0,
                frequency_max_hz=150.0,
            )
        }
    )
    plan = make_plan(EMS, amplitude_ua=90_000)

    assert ENGINE.approve(plan).approved  # within the standard 120 mA
    verdict = ENGINE.approve(plan, capabilities=caps)

    assert not verdict.approved
    violation = only(verdict.violations, ViolationCode.AMPLITUDE_ABOVE_MAX)
    assert violation.layer is Layer.DEVICE
    assert violation.field == "channels[0].amplitude_ua"
    assert violation.value == 90_000
    assert violation.bound == 80_000
    assert "90 mA" in violation.message
    assert "80 mA" in violation.message
    assert "Reference stimulator" in violation.message


def test_device_range_wider_than_standard_does_not_widen_it() -> None:
    # RehaStim 2 goes to 130 mA; the standard 120 mA still applies.
    verdict = ENGINE.approve(
        make_plan(EMS, amplitude_ua=125_000), capabilities=rehastim2_capabilities()
    )

    violation = only(verdict.violations, ViolationCode.AMPLITUDE_ABOVE_MAX)
    assert violation.layer is Layer.STANDARD


def test_microcurrent_plan_on_an_ems_only_device_is_rejected_by_the_device_layer() -> None:
    verdict = ENGINE.approve(make_plan(MC), capabilities=rehastim2_capabilities())

    assert not verdict.approved
    violation = only(verdict.violations, ViolationCode.MODALITY_UNSUPPORTED)
    assert violation.layer is Layer.DEVICE
    assert violation.field == "modality"
    assert violation.value == "microcurrent"
    assert "RehaStim 2 does not support microcurrent" in violation.message
    # One clear reason, not a cascade of range violations.
    assert codes(verdict) == {ViolationCode.MODALITY_UNSUPPORTED}


def test_amplitude_not_on_the_device_step_is_refused_not_rounded() -> None:
    verdict = ENGINE.approve(
        make_plan(EMS, amplitude_ua=20_500), capabilities=rehastim2_capabilities()
    )

    violation = only(verdict.violations, ViolationCode.AMPLITUDE_NOT_ON_STEP)
    assert violation.layer is Layer.DEVICE
    assert violation.bound == 1000
    assert "not rounded" in violation.message


def test_channel_beyond_the_device_channel_count_is_rejected() -> None:
    verdict = ENGINE.approve(make_plan(EMS, channel=9), capabilities=rehastim2_capabilities())

    violation = only(verdict.violations, ViolationCode.CHANNEL_UNAVAILABLE)
    assert violation.field == "channels[0].channel"
    assert violation.value == 9
    assert violation.bound == 8


@pytest.mark.parametrize(
    ("fields", "code", "bound"),
    [
        ({"pulse_width_us": 550}, ViolationCode.PULSE_WIDTH_ABOVE_MAX, 500),
        ({"frequency_hz": 130.0}, ViolationCode.FREQUENCY_ABOVE_MAX, 125.0),
        ({"waveform": Waveform.SINE}, ViolationCode.WAVEFORM_UNSUPPORTED, "rectangular"),
        (
            {"phase_type": PhaseType.MONOPHASIC},
            ViolationCode.PHASE_TYPE_UNSUPPORTED,
            "biphasic_symmetric",
        ),
    ],
)
def test_device_rejects_what_its_output_stage_cannot_produce(
    fields: dict[str, Any], code: ViolationCode, bound: object
) -> None:
    verdict = ENGINE.approve(make_plan(EMS, **fields), capabilities=rehastim2_capabilities())

    violation = only(verdict.violations, code)
    assert violation.layer is Layer.DEVICE
    assert violation.bound == bound


def test_minimum_stimulation_interval_caps_the_frequency() -> None:
    caps = rehastim2_capabilities().model_copy(update={"min_main_stimulation_interval_ms": 10.0})
    at_limit = ENGINE.approve(make_plan(EMS, frequency_hz=100.0), capabilities=caps)
    over = ENGINE.approve(make_plan(EMS, frequency_hz=101.0), capabilities=caps)

    assert at_limit.approved
    violation = only(over.violations, ViolationCode.FREQUENCY_ABOVE_MAX)
    assert violation.bound == pytest.approx(100.0)
    assert "10 ms" in violation.message


def test_device_density_limits_are_hard_where_the_standard_only_warns() -> None:
    # 40 mA, biphasic 250 µs at 125 Hz (duty 1/16): 10 mA rms over 4 cm² = 2.5 mA/cm².
    plan = make_plan(EMS, amplitude_ua=40_000, pulse_width_us=250, frequency_hz=125.0, area_cm2=4.0)

    standalone = ENGINE.approve(plan, acknowledged_warnings={"current_density_high"})
    on_rehastim = ENGINE.approve(
        plan, capabilities=rehastim2_capabilities(), acknowledged_warnings={"current_density_high"}
    )

    assert standalone.approved
    assert not on_rehastim.approved
    violation = only(on_rehastim.violations, ViolationCode.CURRENT_DENSITY_ABOVE_MAX)
    assert violation.layer is Layer.DEVICE
    assert violation.bound == 2.0


def test_device_power_density_limit_of_0_1_w_per_cm2_applies() -> None:
    # 100 mA at duty 1/16 → 25 mA rms: (25 mA)² × 500 Ω / 3 cm² = 0.104 W/cm² (< 0.25 standard).
    plan = make_plan(
        EMS, amplitude_ua=100_000, pulse_width_us=250, frequency_hz=125.0, area_cm2=3.0
    )
    verdict = ENGINE.approve(
        plan, capabilities=rehastim2_capabilities(), acknowledged_warnings={"current_density_high"}
    )

    violation = only(verdict.violations, ViolationCode.POWER_DENSITY_ABOVE_MAX)
    assert violation.layer is Layer.DEVICE
    assert violation.bound == 0.1


# --- site layer ---------------------------------------------------------------------------------


def test_site_policy_narrower_than_device_and_standard_wins() -> None:
    policy = SitePolicy(name="Clinic A", ems=ModalityPolicy(max_amplitude_ua=60_000))
    plan = make_plan(EMS, amplitude_ua=70_000)

    assert ENGINE.approve(plan, capabilities=rehastim2_capabilities()).approved
    verdict = ENGINE.approve(plan, capabilities=rehastim2_capabilities(), site_policy=policy)

    violation = only(verdict.violations, ViolationCode.AMPLITUDE_ABOVE_MAX)
    assert violation.layer is Layer.SITE
    assert violation.bound == 60_000
    assert "site policy (Clinic A)" in violation.message


def test_site_policy_for_one_modality_does_not_restrict_the_other() -> None:
    policy = SitePolicy(ems=ModalityPolicy(max_amplitude_ua=10_000))
    assert ENGINE.approve(make_plan(MC), site_policy=policy).approved


@pytest.mark.parametrize(
    ("rules", "plan_fields", "code"),
    [
        ({"max_frequency_hz": 40.0}, {"frequency_hz": 45.0}, ViolationCode.FREQUENCY_ABOVE_MAX),
        ({"max_pulse_width_us": 200}, {"pulse_width_us": 250}, ViolationCode.PULSE_WIDTH_ABOVE_MAX),
        ({"max_duration_s": 900}, {"duration_s": 1200}, ViolationCode.DURATION_ABOVE_MAX),
        (
            {"max_current_density_ma_per_cm2": 0.1},
            {"amplitude_ua": 20_000},
            ViolationCode.CURRENT_DENSITY_ABOVE_MAX,
        ),
        ({"forbidden_body_sites": ["thigh_anterior"]}, {}, ViolationCode.BODY_SITE_FORBIDDEN),
    ],
)
def test_each_site_maximum_rejects_a_plan_above_it(
    rules: dict[str, object], plan_fields: dict[str, Any], code: ViolationCode
) -> None:
    policy = SitePolicy.model_validate({"ems": rules})
    verdict = ENGINE.approve(make_plan(EMS, **plan_fields), site_policy=policy)

    violation = only(verdict.violations, code)
    assert violation.layer is Layer.SITE


def test_site_wide_forbidden_site_applies_to_every_modality() -> None:
    policy = SitePolicy(forbidden_body_sites=frozenset({"forearm", "thigh_anterior"}))

    for modality in (EMS, MC):
        verdict = ENGINE.approve(make_plan(modality), site_policy=policy)
        assert only(verdict.violations, ViolationCode.BODY_SITE_FORBIDDEN).layer is Layer.SITE


# --- prescription layer -------------------------------------------------------------------------


def test_prescription_narrower_than_site_wins() -> None:
    policy = SitePolicy(ems=ModalityPolicy(max_amplitude_ua=60_000))
    client = ClientContext(prescription=Prescription.model_validate({"max_amplitude_ma": 40}))
    plan = make_plan(EMS, amplitude_ua=50_000)

    assert ENGINE.approve(plan, site_policy=policy).approved
    verdict = ENGINE.approve(plan, site_policy=policy, client=client)

    violation = only(verdict.violations, ViolationCode.AMPLITUDE_ABOVE_MAX)
    assert violation.layer is Layer.PRESCRIPTION
    assert violation.bound == 40_000
    assert "prescription maximum of 40 mA" in violation.message


@pytest.mark.parametrize(
    ("prescription", "plan_fields", "code", "field"),
    [
        ({"modalities": ["microcurrent"]}, {}, ViolationCode.MODALITY_NOT_PRESCRIBED, "modality"),
        (
            {"max_frequency_hz": 30.0},
            {},
            ViolationCode.FREQUENCY_ABOVE_MAX,
            "channels[0].frequency_hz",
        ),
        (
            {"max_pulse_width_us": 200},
            {},
            ViolationCode.PULSE_WIDTH_ABOVE_MAX,
            "channels[0].pulse_width_us",
        ),
        ({"max_duration_s": 600}, {}, ViolationCode.DURATION_ABOVE_MAX, "duration_s"),
        (
            {"allowed_body_sites": ["calf"]},
            {},
            ViolationCode.BODY_SITE_NOT_PRESCRIBED,
            "electrode.body_site",
        ),
    ],
)
def test_each_prescription_limit_rejects_a_plan_outside_it(
    prescription: dict[str, object], plan_fields: dict[str, Any], code: ViolationCode, field: str
) -> None:
    client = ClientContext(prescription=Prescription.model_validate(prescription))
    verdict = ENGINE.approve(make_plan(EMS, **plan_fields), client=client)

    violation = only(verdict.violations, code)
    assert violation.layer is Layer.PRESCRIPTION
    assert violation.field == field


def test_a_plan_within_every_layer_is_approved_with_all_layers_recorded() -> None:
    verdict = ENGINE.approve(
        make_plan(EMS, amplitude_ua=20_000),
        capabilities=rehastim2_capabilities(),
        site_policy=SitePolicy(ems=ModalityPolicy.model_validate({"max_amplitude_ma": 60})),
        client=ClientContext(
            prescription=Prescription.model_validate({"max_amplitude_ma": 40, "modalities": [EMS]})
        ),
    )

    assert verdict.approved
    assert verdict.violations == ()
    assert verdict.layers == (Layer.STANDARD, Layer.DEVICE, Layer.SITE, Layer.PRESCRIPTION)
    assert verdict.approved_plan is not None
    assert verdict.approved_plan.layers == verdict.layers


def test_a_value_over_several_layers_is_reported_by_each_in_layer_order() -> None:
    verdict = ENGINE.approve(
        make_plan(EMS, amplitude_ua=127_000),
        capabilities=dual_modality_capabilities(),
        site_policy=SitePolicy(ems=ModalityPolicy.model_validate({"max_amplitude_ma": 60})),
        client=ClientContext(prescription=Prescription.model_validate({"max_amplitude_ma": 40})),
    )

    layers = [v.layer for v in verdict.violations if v.code is ViolationCode.AMPLITUDE_ABOVE_MAX]
    assert layers == [Layer.STANDARD, Layer.DEVICE, Layer.SITE, Layer.PRESCRIPTION]
