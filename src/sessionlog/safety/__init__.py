"""The safety layer: plans, their dose, and the limits engine that alone decides what is allowed.

Everything below this package (session runner, HAL, drivers) receives an ``ApprovedPlan`` that only
``LimitsEngine`` can create; everything above it submits a ``StimulationPlan`` and reads a
``Verdict``.
"""

from sessionlog.safety.amplitude_range import AmplitudeRange
from sessionlog.safety.capabilities import DeviceCapabilities, ModalityCapabilities
from sessionlog.safety.dose import (
    REFERENCE_LOAD_OHM,
    DoseFigures,
    PlanDose,
    channel_dose,
    plan_dose,
)
from sessionlog.safety.limits import LimitsEngine, check_standard
from sessionlog.safety.plan import (
    BodySite,
    ChannelPlan,
    ElectrodePlacement,
    Modality,
    PhaseType,
    Polarity,
    Prescription,
    Side,
    StimulationPlan,
    Waveform,
)
from sessionlog.safety.profiles import (
    EMS_PROFILE,
    MICROCURRENT_PROFILE,
    STANDARD_PROFILES,
    Limit,
    StandardProfile,
    standard_profile,
)
from sessionlog.safety.screening import ClientContext, Contraindication, ContraindicationOverride
from sessionlog.safety.site_policy import (
    ModalityPolicy,
    SitePolicy,
    SitePolicyError,
    load_site_policy,
    parse_site_policy,
)
from sessionlog.safety.verdict import (
    ApprovedPlan,
    Layer,
    SafetyWarning,
    Verdict,
    Violation,
    ViolationCode,
    WarningCode,
)

__all__ = [
    "EMS_PROFILE",
    "MICROCURRENT_PROFILE",
    "REFERENCE_LOAD_OHM",
    "STANDARD_PROFILES",
    "AmplitudeRange",
    "ApprovedPlan",
    "BodySite",
    "ChannelPlan",
    "ClientContext",
    "Contraindication",
    "ContraindicationOverride",
    "DeviceCapabilities",
    "DoseFigures",
    "ElectrodePlacement",
    "Layer",
    "Limit",
    "LimitsEngine",
    "Modality",
    "ModalityCapabilities",
    "ModalityPolicy",
    "PhaseType",
    "PlanDose",
    "Polarity",
    "Prescription",
    "SafetyWarning",
    "Side",
    "SitePolicy",
    "SitePolicyError",
    "StandardProfile",
    "StimulationPlan",
    "Verdict",
    "Violation",
    "ViolationCode",
    "WarningCode",
    "Waveform",
    "channel_dose",
    "check_standard",
    "load_site_policy",
    "parse_site_policy",
    "plan_dose",
    "standard_profile",
]
