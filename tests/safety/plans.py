"""Plan builders for the safety tests: a known-good plan per modality, changed one field at a time."""

from __future__ import annotations

from typing import Any

from sessionlog.safety import (
    DeviceCapabilities,
    Modality,
    ModalityCapabilities,
    PhaseType,
    StimulationPlan,
    Verdict,
    Violation,
    ViolationCode,
    Waveform,
)

# Typical, comfortably legal sessions: every dose figure far from every bound.
BASE_CHANNEL: dict[Modality, dict[str, Any]] = {
    Modality.EMS: {
        "channel": 1,
        "amplitude_ua": 20_000,
        "pulse_width_us": 250,
        "frequency_hz": 50.0,
    },
    Modality.MICROCURRENT: {
        "channel": 1,
        "amplitude_ua": 300,
        "pulse_width_us": 5000,
        "frequency_hz": 10.0,
    },
}
BASE_ELECTRODE: dict[Modality, dict[str, Any]] = {
    Modality.EMS: {"body_site": "thigh_anterior", "area_cm2": 25.0},
    Modality.MICROCURRENT: {"body_site": "forearm", "area_cm2": 4.0},
}


def make_plan(
    modality: Modality,
    *,
    duration_s: int = 1200,
    body_site: str | None = None,
    area_cm2: float | None = None,
    channels: list[dict[str, Any]] | None = None,
    **channel_fields: Any,
) -> StimulationPlan:
    """The base plan of ``modality`` with ``channel_fields`` replacing fields of its one channel.

    ``amplitude_ma=...`` replaces the µA amplitude (the plan's own unit handling then applies).
    """
    if channels is None:
        channel = dict(BASE_CHANNEL[modality])
        if "amplitude_ma" in channel_fields:
            channel.pop("amplitude_ua")
        channel.update(channel_fields)
        channels = [channel]
    electrode = dict(BASE_ELECTRODE[modality])
    if body_site is not None:
        electrode["body_site"] = body_site
    if area_cm2 is not None:
        electrode["area_cm2"] = area_cm2
    return StimulationPlan.model_validate(
        {
            "modality": modality,
            "channels": channels,
            "duration_s": duration_s,
            "electrode": electrode,
        }
    )


def codes(verdict_or_violations: Verdict | list[Violation]) -> set[ViolationCode]:
    violations = (
        verdict_or_violations.violations
        if isinstance(verdict_or_violations, Verdict)
        else verdict_or_violations
    )
    return {v.code for v in violations}


def only(violations: tuple[Violation, ...] | list[Violation], code: ViolationCode) -> Violation:
    """The single violation with ``code``; fails the test if there are none or several."""
    found = [v for v in violations if v.code is code]
    assert len(found) == 1, f"expected one {code}, got {[v.message for v in violations]}"
    return found[0]


def rehastim2_capabilities() -> DeviceCapabilities:
    """An EMS-only 8-channel device with the RehaStim 2 ranges and its IFU density limits."""
    return DeviceCapabilities(
        model_name="RehaStim 2",
        channel_count=8,
        modalities={
            Modality.EMS: ModalityCapabilities(
                amplitude_max_ua=130_000,
                amplitude_step_ua=1000,
                pulse_width_min_us=20,
                pulse_width_max_us=500,
                frequency_min_hz=1.0,
                frequency_max_hz=125.0,
                waveforms=frozenset({Waveform.RECTANGULAR}),
                phase_types=frozenset({PhaseType.BIPHASIC_SYMMETRIC}),
            )
        },
        max_current_density_ma_per_cm2=2.0,
        max_power_density_w_per_cm2=0.1,
        min_main_stimulation_interval_ms=8.0,
    )


def dual_modality_capabilities(**overrides: Any) -> DeviceCapabilities:
    """A 4-channel device supporting both modalities with ranges as wide as the standard profiles."""
    fields: dict[str, Any] = {
        "model_name": "Reference stimulator",
        "channel_count": 4,
        "modalities": {
            Modality.EMS: ModalityCapabilities(
                amplitude_max_ua=120_000,
                pulse_width_min_us=20,
                pulse_width_max_us=600,
                frequency_min_hz=1.0,
                frequency_max_hz=150.0,
            ),
            Modality.MICROCURRENT: ModalityCapabilities(
                amplitude_max_ua=999,
                pulse_width_min_us=10,
                pulse_width_max_us=1_000_000,
                frequency_min_hz=0.1,
                frequency_max_hz=1000.0,
            ),
        },
    }
    fields.update(overrides)
    return DeviceCapabilities(**fields)
