"""Hypothesis strategies for the limits engine's property tests: plans and the layers around them.

Values are drawn from a typical range nine times in ten, so that many plans are approved and the
checks after an approval get exercised, and from the whole representable range otherwise, so that
every bound is crossed somewhere.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from sessionlog.safety import (
    BodySite,
    ChannelPlan,
    ClientContext,
    Contraindication,
    ContraindicationOverride,
    DeviceCapabilities,
    Modality,
    ModalityCapabilities,
    ModalityPolicy,
    PhaseType,
    Prescription,
    SitePolicy,
    StimulationPlan,
    Waveform,
)
from sessionlog.safety.plan import UA_PER_MA

EMS_FORBIDDEN = {"head_transcranial", "eyes", "mouth", "neck_anterior", "chest_transthoracic"}
USUAL_SITES = [s for s in BodySite if s.value not in EMS_FORBIDDEN]


def mostly(typical: st.SearchStrategy[Any], anything: st.SearchStrategy[Any]) -> Any:
    """Draw from ``typical`` nine times in ten so that many plans pass, yet edges stay covered."""
    return st.integers(0, 9).flatmap(lambda pick: anything if pick == 0 else typical)


def optional(strategy: st.SearchStrategy[Any]) -> Any:
    return mostly(st.none(), strategy)


any_amplitude_ua = st.integers(0, 1_000_000)
any_pulse_width_us = st.integers(1, 10_000_000)
any_frequency_hz = st.floats(1e-3, 100_000.0)
any_seconds = st.floats(0.0, 3600.0)
TYPICAL = {
    Modality.EMS: {
        "amplitude_ua": st.one_of(
            st.integers(1, 120).map(lambda ma: ma * 1000), st.integers(1000, 120_000), st.just(0)
        ),
        "pulse_width_us": st.integers(20, 600),
        "frequency_hz": st.floats(1.0, 150.0),
    },
    Modality.MICROCURRENT: {
        "amplitude_ua": st.one_of(st.integers(0, 999), st.integers(0, 100)),
        "pulse_width_us": st.integers(10, 400),
        "frequency_hz": st.floats(0.1, 1000.0),
    },
}


@st.composite
def channel_plans(draw: st.DrawFn, modality: Modality, number: int) -> ChannelPlan:
    typical = TYPICAL[modality]
    on_off = draw(
        mostly(
            st.one_of(st.none(), st.tuples(st.floats(6.0, 60.0), st.floats(0.0, 60.0))),
            st.tuples(st.floats(0.1, 3600.0), st.floats(0.0, 3600.0)),
        )
    )
    return ChannelPlan(
        channel=number,
        amplitude_ua=draw(mostly(typical["amplitude_ua"], any_amplitude_ua)),
        pulse_width_us=draw(mostly(typical["pulse_width_us"], any_pulse_width_us)),
        frequency_hz=draw(mostly(typical["frequency_hz"], any_frequency_hz)),
        waveform=draw(mostly(st.just(Waveform.RECTANGULAR), st.sampled_from(Waveform))),
        phase_type=draw(st.sampled_from(PhaseType)),
        ramp_up_s=draw(mostly(st.floats(0.0, 3.0), any_seconds)),
        ramp_down_s=draw(mostly(st.floats(0.0, 3.0), any_seconds)),
        on_time_s=None if on_off is None else on_off[0],
        off_time_s=None if on_off is None else on_off[1],
    )


@st.composite
def plans(draw: st.DrawFn) -> StimulationPlan:
    modality = draw(st.sampled_from(Modality))
    numbers = draw(
        st.lists(mostly(st.integers(1, 4), st.integers(1, 64)), min_size=1, max_size=3, unique=True)
    )
    return StimulationPlan(
        modality=modality,
        channels=[draw(channel_plans(modality, n)) for n in numbers],
        duration_s=draw(mostly(st.integers(60, 3600), st.integers(1, 86_400))),
        electrode={
            "body_site": draw(mostly(st.sampled_from(USUAL_SITES), st.sampled_from(BodySite))),
            "area_cm2": draw(mostly(st.floats(5.0, 100.0), st.floats(0.01, 1000.0))),
        },
    )


@st.composite
def modality_capabilities(draw: st.DrawFn) -> ModalityCapabilities:
    amp_min = draw(mostly(st.just(0), st.integers(0, 2_000)))
    pw_min = draw(st.integers(1, 30))
    f_min = draw(st.floats(0.01, 2.0))
    return ModalityCapabilities(
        amplitude_min_ua=amp_min,
        amplitude_max_ua=draw(mostly(st.integers(60_000, 150_000), st.integers(amp_min, 150_000))),
        amplitude_step_ua=draw(mostly(st.just(1), st.sampled_from([10, 1000, 2000]))),
        pulse_width_min_us=pw_min,
        pulse_width_max_us=draw(mostly(st.integers(400, 2_000_000), st.integers(pw_min, 1000))),
        pulse_width_step_us=draw(mostly(st.just(1), st.just(10))),
        frequency_min_hz=f_min,
        frequency_max_hz=draw(st.floats(50.0, 2_000.0)),
        waveforms=draw(optional(st.frozensets(st.sampled_from(Waveform), min_size=1))),
        phase_types=draw(optional(st.frozensets(st.sampled_from(PhaseType), min_size=1))),
    )


@st.composite
def device_capabilities(draw: st.DrawFn) -> DeviceCapabilities:
    modalities = draw(
        mostly(st.just(frozenset(Modality)), st.sampled_from([{m} for m in Modality]))
    )
    return DeviceCapabilities(
        model_name="generated",
        channel_count=draw(mostly(st.integers(4, 8), st.integers(1, 8))),
        modalities={m: draw(modality_capabilities()) for m in modalities},
        max_current_density_ma_per_cm2=draw(optional(st.floats(0.1, 5.0))),
        max_power_density_w_per_cm2=draw(optional(st.floats(0.01, 0.5))),
        min_main_stimulation_interval_ms=draw(optional(st.floats(0.5, 20.0))),
    )


@st.composite
def modality_policies(draw: st.DrawFn, max_amplitude_ua: int = 150_000) -> ModalityPolicy:
    return ModalityPolicy(
        max_amplitude_ua=draw(optional(st.integers(0, max_amplitude_ua))),
        max_frequency_hz=draw(optional(st.floats(0.1, 500.0))),
        max_pulse_width_us=draw(optional(st.integers(1, 2_000))),
        max_duration_s=draw(optional(st.integers(1, 4_000))),
        max_current_density_ma_per_cm2=draw(optional(st.floats(0.01, 5.0))),
        forbidden_body_sites=draw(st.frozensets(st.sampled_from(BodySite), max_size=3)),
    )


site_policies = st.builds(
    SitePolicy,
    ems=modality_policies(),
    # A microcurrent ceiling of 1 mA or more is refused as a unit mix-up.
    microcurrent=modality_policies(max_amplitude_ua=UA_PER_MA - 1),
    forbidden_body_sites=st.frozensets(st.sampled_from(BodySite), max_size=3),
    warnings_acknowledgeable=st.booleans(),
)


@st.composite
def clients(draw: st.DrawFn) -> ClientContext:
    prescription = None
    if draw(st.booleans()):
        modalities = draw(optional(st.lists(st.sampled_from(Modality), unique=True)))
        # A prescription for microcurrent alone refuses a ceiling of 1 mA or more (a mix-up).
        ceiling = UA_PER_MA - 1 if modalities == [Modality.MICROCURRENT] else 150_000
        prescription = Prescription(
            modalities=modalities,
            max_amplitude_ua=draw(optional(st.integers(0, ceiling))),
            max_frequency_hz=draw(optional(st.floats(0.1, 500.0))),
            max_pulse_width_us=draw(optional(st.integers(1, 2_000))),
            max_duration_s=draw(optional(st.integers(1, 4_000))),
            allowed_body_sites=draw(
                optional(st.lists(st.sampled_from(BodySite), unique=True, max_size=12))
            ),
        )
    contraindications = draw(
        mostly(st.just(frozenset()), st.frozensets(st.sampled_from(Contraindication), max_size=2))
    )
    overridden = draw(st.frozensets(st.sampled_from(Contraindication), max_size=2))
    return ClientContext(
        prescription=prescription,
        contraindications=contraindications,
        overrides=[
            ContraindicationOverride(contraindication=c, authorised_by="Dr. X", reason="checked")
            for c in sorted(overridden)
        ],
    )


contexts = st.fixed_dictionaries(
    {
        "capabilities": st.none() | device_capabilities(),
        "site_policy": st.none() | site_policies,
        "client": st.none() | clients(),
        "acknowledged_warnings": st.frozensets(st.just("current_density_high")),
    }
)
