"""The standard profiles: the outermost limits layer, one per modality, each number with its source.

These are the facts of DESIGN.md §3 (public standards, guidance and manufacturers' instructions).
Each bound carries a ``source`` string so that a violation can cite where the number comes from.
Devices, site policies and prescriptions may only narrow these limits; the engine applies all layers
and the most restrictive one wins.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from sessionlog.safety.plan import BodySite, Modality

SOURCE_AMPLITUDE_EMS = (
    "≤ 120 mA peak per channel: RehaStim 2 IFU (device range 0–130 mA); TensCare Flexistim manual"
)
SOURCE_AMPLITUDE_MICROCURRENT = (
    "microcurrent (MENS) is defined as below 1 mA: TensCare Flexistim manual; MENS definition"
)
SOURCE_DC_MICROCURRENT = "DC microcurrent ≤ 100 µA: TensCare Flexistim manual; MENS practice"
SOURCE_UNIT_GUARD_EMS = (
    "a nonzero amplitude below 1 mA is the microcurrent regime (MENS definition); "
    "in an EMS plan it signals a µA/mA mix-up "
    "(DESIGN.md §2: a unit mismatch is a rejection, never a guess)"
)
SOURCE_RMS = "≤ 50 mA rms output: Enraf-Nonius IFU practice under IEC 60601-2-10"
SOURCE_PULSE_ENERGY = "≤ 300 mJ per pulse into 500 Ω: IEC 60601-2-10 (clause 51.104, older edition)"
SOURCE_PEAK_VOLTAGE = "≤ 500 V peak: IEC 60601-2-10"
SOURCE_CURRENT_DENSITY = (
    "current density above 2 mA rms/cm² needs an operator acknowledgement: "
    "IEC 60601-2-10 (2012) IFU requirement"
)
SOURCE_DC_DENSITY = (
    "DC component ≤ 0.2 mA/cm²: IEC 60601-2-10 (2012) IFU requirement; manufacturer practice"
)
SOURCE_POWER_DENSITY = "≤ 0.25 W/cm²: FDA guidance for powered muscle stimulators"
SOURCE_PULSE_WIDTH_EMS = "20–600 µs: NMES literature"
SOURCE_PULSE_WIDTH_MICROCURRENT = "0.01–1000 ms per phase: TensCare Flexistim manual"
SOURCE_FREQUENCY_EMS = "1–150 Hz: NMES literature"
SOURCE_FREQUENCY_MICROCURRENT = "0.1–1000 Hz: frequency-specific microcurrent (FSM) practice"
SOURCE_RAMP = "0–10 s: NMES trials use ramps of 0.5–3.5 s"
SOURCE_DURATION = "≤ 60 min per session: TENS/MENS practice"
SOURCE_BODY_SITES_EMS = (
    "never across the head, over the eyes or mouth, the front of the neck (carotid sinus) "
    "or across the chest: IEC 60601-2-10 IFU warnings"
)
SOURCE_BODY_SITES_MICROCURRENT = (
    "never over the eyes, the carotid sinus or across the chest (facial sites otherwise allowed): "
    "IEC 60601-2-10 IFU warnings"
)
SOURCE_PULSE_TIMING = (
    "physical consistency: one pulse (all its phases) must fit inside one period 1/f"
)
SOURCE_RAMP_TIMING = "plan consistency: ramp up and ramp down must fit inside the on period"


class Limit(BaseModel):
    """One number of a profile, its unit, and where it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: int | float
    unit: str
    source: str


class StandardProfile(BaseModel):
    """The default limits for one modality. ``None`` means the quantity has no standard limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: Modality
    max_amplitude_ua: Limit
    min_nonzero_amplitude_ua: Limit | None
    """The unit mix-up guard: a nonzero amplitude below this is refused as a likely µA/mA mix-up."""
    max_dc_amplitude_ua: Limit | None
    max_rms_current_ua: Limit | None
    max_pulse_energy_mj: Limit
    max_peak_voltage_v: Limit
    current_density_warning_ma_per_cm2: Limit
    """Above this the plan is approved only with an acknowledgement (a warning, not a violation)."""
    max_dc_current_density_ma_per_cm2: Limit
    max_power_density_w_per_cm2: Limit
    min_pulse_width_us: Limit
    max_pulse_width_us: Limit
    min_frequency_hz: Limit
    max_frequency_hz: Limit
    max_ramp_s: Limit
    max_duration_s: Limit
    forbidden_body_sites: frozenset[BodySite]
    forbidden_body_sites_source: str


def _shared_limits() -> dict[str, Limit]:
    """Limits that IEC 60601-2-10, the FDA guidance and session practice set for both modalities."""
    return {
        "max_pulse_energy_mj": Limit(value=300, unit="mJ", source=SOURCE_PULSE_ENERGY),
        "max_peak_voltage_v": Limit(value=500, unit="V", source=SOURCE_PEAK_VOLTAGE),
        "current_density_warning_ma_per_cm2": Limit(
            value=2.0, unit="mA/cm²", source=SOURCE_CURRENT_DENSITY
        ),
        "max_dc_current_density_ma_per_cm2": Limit(
            value=0.2, unit="mA/cm²", source=SOURCE_DC_DENSITY
        ),
        "max_power_density_w_per_cm2": Limit(value=0.25, unit="W/cm²", source=SOURCE_POWER_DENSITY),
        "max_ramp_s": Limit(value=10.0, unit="s", source=SOURCE_RAMP),
        "max_duration_s": Limit(value=3600, unit="s", source=SOURCE_DURATION),
    }


EMS_PROFILE = StandardProfile(
    modality=Modality.EMS,
    max_amplitude_ua=Limit(value=120_000, unit="µA", source=SOURCE_AMPLITUDE_EMS),
    min_nonzero_amplitude_ua=Limit(value=1000, unit="µA", source=SOURCE_UNIT_GUARD_EMS),
    max_dc_amplitude_ua=None,
    max_rms_current_ua=Limit(value=50_000, unit="µA", source=SOURCE_RMS),
    min_pulse_width_us=Limit(value=20, unit="µs", source=SOURCE_PULSE_WIDTH_EMS),
    max_pulse_width_us=Limit(value=600, unit="µs", source=SOURCE_PULSE_WIDTH_EMS),
    min_frequency_hz=Limit(value=1.0, unit="Hz", source=SOURCE_FREQUENCY_EMS),
    max_frequency_hz=Limit(value=150.0, unit="Hz", source=SOURCE_FREQUENCY_EMS),
    forbidden_body_sites=frozenset(
        {
            BodySite.HEAD_TRANSCRANIAL,
            BodySite.EYES,
            BodySite.MOUTH,
            BodySite.NECK_ANTERIOR,
            BodySite.CHEST_TRANSTHORACIC,
        }
    ),
    forbidden_body_sites_source=SOURCE_BODY_SITES_EMS,
    **_shared_limits(),
)

MICROCURRENT_PROFILE = StandardProfile(
    modality=Modality.MICROCURRENT,
    max_amplitude_ua=Limit(value=999, unit="µA", source=SOURCE_AMPLITUDE_MICROCURRENT),
    min_nonzero_amplitude_ua=None,
    max_dc_amplitude_ua=Limit(value=100, unit="µA", source=SOURCE_DC_MICROCURRENT),
    max_rms_current_ua=None,
    min_pulse_width_us=Limit(value=10, unit="µs", source=SOURCE_PULSE_WIDTH_MICROCURRENT),
    max_pulse_width_us=Limit(value=1_000_000, unit="µs", source=SOURCE_PULSE_WIDTH_MICROCURRENT),
    min_frequency_hz=Limit(value=0.1, unit="Hz", source=SOURCE_FREQUENCY_MICROCURRENT),
    max_frequency_hz=Limit(value=1000.0, unit="Hz", source=SOURCE_FREQUENCY_MICROCURRENT),
    forbidden_body_sites=frozenset(
        {BodySite.EYES, BodySite.NECK_ANTERIOR, BodySite.CHEST_TRANSTHORACIC}
    ),
    forbidden_body_sites_source=SOURCE_BODY_SITES_MICROCURRENT,
    **_shared_limits(),
)

STANDARD_PROFILES: dict[Modality, StandardProfile] = {
    Modality.EMS: EMS_PROFILE,
    Modality.MICROCURRENT: MICROCURRENT_PROFILE,
}


def standard_profile(modality: Modality) -> StandardProfile:
    """The profile for a modality; every Modality has one."""
    return STANDARD_PROFILES[modality]
