"""Dose formulas against values computed by hand (DESIGN.md §3)."""

from __future__ import annotations

import math

import pytest

from sessionlog.safety import (
    ChannelPlan,
    Modality,
    PhaseType,
    Waveform,
    channel_dose,
    plan_dose,
)

from .plans import make_plan


def _channel(**fields: object) -> ChannelPlan:
    base: dict[str, object] = {
        "channel": 1,
        "amplitude_ua": 50_000,
        "pulse_width_us": 300,
        "frequency_hz": 50.0,
    }
    base.update(fields)
    return ChannelPlan.model_validate(base)


def test_biphasic_symmetric_50_ma_300_us_50_hz_on_25_cm2_matches_hand_computation() -> None:
    dose = channel_dose(_channel(), area_cm2=25.0, duration_s=1200)

    # Q = 50 mA × 300 µs = 15 µC; balanced biphasic leaves no net charge.
    assert dose.phase_charge_uc == pytest.approx(15.0)
    assert dose.net_charge_per_pulse_uc == 0.0
    # Both phases count: 600 µs × 50 Hz = 0.03.
    assert dose.pulse_duration_us == 600
    assert dose.duty_fraction == pytest.approx(0.03)
    # I_rms = 50 mA × sqrt(0.03) = 8.660 mA; / 25 cm² = 0.3464 mA/cm².
    assert dose.rms_current_ua == pytest.approx(8660.254, rel=1e-6)
    assert dose.current_density_ma_per_cm2 == pytest.approx(0.346410, rel=1e-5)
    # (8.660 mA)² × 500 Ω / 25 cm² = 75e-6 A² × 500 / 25 = 1.5 mW/cm².
    assert dose.power_density_w_per_cm2 == pytest.approx(0.0015)
    # (50 mA)² × 500 Ω × 600 µs = 0.75 mJ; 50 mA × 500 Ω = 25 V.
    assert dose.pulse_energy_mj == pytest.approx(0.75)
    assert dose.peak_voltage_v == pytest.approx(25.0)
    assert dose.dc_current_ua == 0.0
    assert dose.dc_current_density_ma_per_cm2 == 0.0
    # Continuous output for 1200 s: mean |I| = 50 mA × 0.03 = 1.5 mA → 1.8 C.
    assert dose.on_time_fraction == 1.0
    assert dose.on_time_s == 1200.0
    assert dose.total_charge_uc == pytest.approx(1_800_000.0)


def test_monophasic_pulse_carries_its_phase_charge_as_net_charge_and_dc_current() -> None:
    channel = _channel(
        amplitude_ua=10_000,
        pulse_width_us=200,
        frequency_hz=100.0,
        phase_type=PhaseType.MONOPHASIC,
    )
    dose = channel_dose(channel, area_cm2=10.0, duration_s=600)

    assert dose.phase_charge_uc == pytest.approx(2.0)  # 10 mA × 200 µs
    assert dose.net_charge_per_pulse_uc == pytest.approx(2.0)
    assert dose.pulse_duration_us == 200  # one phase only
    assert dose.rms_current_ua == pytest.approx(10_000 * math.sqrt(0.02))
    assert dose.dc_current_ua == pytest.approx(200.0)  # 10 mA × 200 µs × 100 Hz
    assert dose.dc_current_density_ma_per_cm2 == pytest.approx(0.02)
    assert dose.pulse_energy_mj == pytest.approx(0.01)  # (10 mA)² × 500 Ω × 200 µs
    assert dose.peak_voltage_v == pytest.approx(5.0)


def test_dc_waveform_has_rms_and_dc_current_equal_to_its_amplitude() -> None:
    channel = _channel(amplitude_ua=80, pulse_width_us=1000, waveform=Waveform.DC)
    dose = channel_dose(channel, area_cm2=2.0, duration_s=100)

    assert dose.duty_fraction == 1.0
    assert dose.rms_current_ua == pytest.approx(80.0)
    assert dose.dc_current_ua == pytest.approx(80.0)
    assert dose.current_density_ma_per_cm2 == pytest.approx(0.04)
    assert dose.dc_current_density_ma_per_cm2 == pytest.approx(0.04)
    # (80 µA)² × 500 Ω / 2 cm² = 1.6 µW/cm²; 80 µA for 100 s = 8000 µC.
    assert dose.power_density_w_per_cm2 == pytest.approx(1.6e-6)
    assert dose.total_charge_uc == pytest.approx(8000.0)


def test_asymmetric_biphasic_is_taken_as_charge_balanced_with_both_phases_counted() -> None:
    asymmetric = channel_dose(
        _channel(phase_type=PhaseType.BIPHASIC_ASYMMETRIC), area_cm2=25.0, duration_s=60
    )
    symmetric = channel_dose(_channel(), area_cm2=25.0, duration_s=60)

    assert asymmetric.net_charge_per_pulse_uc == 0.0
    assert asymmetric.dc_current_ua == 0.0
    assert asymmetric.pulse_duration_us == 600
    assert asymmetric.rms_current_ua == symmetric.rms_current_ua


@pytest.mark.parametrize("waveform", [Waveform.SINE, Waveform.TRIANGULAR])
def test_non_rectangular_pulses_use_the_rectangular_upper_bound(waveform: Waveform) -> None:
    shaped = channel_dose(_channel(waveform=waveform), area_cm2=25.0, duration_s=60)
    rectangular = channel_dose(_channel(), area_cm2=25.0, duration_s=60)

    assert shaped.rms_current_ua == rectangular.rms_current_ua
    assert shaped.power_density_w_per_cm2 == rectangular.power_density_w_per_cm2


@pytest.mark.parametrize(
    ("duration_s", "expected_on_s"),
    [
        (1200, 400.0),  # 80 whole cycles of 5 s on / 10 s off
        (1203, 403.0),  # a final partial cycle still in its on phase
        (1210, 405.0),  # a final partial cycle past its on phase
    ],
)
def test_on_time_counts_whole_cycles_and_the_on_part_of_a_partial_cycle(
    duration_s: int, expected_on_s: float
) -> None:
    dose = channel_dose(
        _channel(on_time_s=5.0, off_time_s=10.0), area_cm2=25.0, duration_s=duration_s
    )

    assert dose.on_time_s == pytest.approx(expected_on_s)
    assert dose.on_time_fraction == pytest.approx(expected_on_s / duration_s)


def test_total_charge_counts_ramps_at_half_amplitude_inside_each_on_period() -> None:
    channel = _channel(on_time_s=5.0, off_time_s=10.0, ramp_up_s=1.0, ramp_down_s=1.0)
    dose = channel_dose(channel, area_cm2=25.0, duration_s=1200)

    # mean |I| 1.5 mA × 400 s on × (1 − 2 s of ramps / (2 × 5 s)) = 480 000 µC.
    assert dose.total_charge_uc == pytest.approx(480_000.0)


def test_ramps_of_continuous_output_are_spread_over_the_whole_session() -> None:
    channel = _channel(ramp_up_s=2.0, ramp_down_s=2.0)
    dose = channel_dose(channel, area_cm2=25.0, duration_s=1200)

    assert dose.total_charge_uc == pytest.approx(1500.0 * (1200.0 - 2.0))


def test_plan_summary_takes_maximum_densities_and_sums_charge_over_channels() -> None:
    plan = make_plan(
        Modality.EMS,
        area_cm2=25.0,
        duration_s=1200,
        channels=[
            {"channel": 1, "amplitude_ua": 50_000, "pulse_width_us": 300, "frequency_hz": 50.0},
            {
                "channel": 2,
                "amplitude_ua": 20_000,
                "pulse_width_us": 300,
                "frequency_hz": 50.0,
                "on_time_s": 5.0,
                "off_time_s": 5.0,
            },
        ],
    )
    dose = plan_dose(plan)
    first, second = dose.channels

    assert dose.max_current_density_ma_per_cm2 == first.current_density_ma_per_cm2
    assert dose.max_power_density_w_per_cm2 == first.power_density_w_per_cm2
    # 1.8 C continuous + 20 mA × 0.03 × 600 s on = 0.36 C.
    assert second.total_charge_uc == pytest.approx(360_000.0)
    assert dose.total_charge_uc == pytest.approx(2_160_000.0)
    assert dose.on_time_s == 1200.0
