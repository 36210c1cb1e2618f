"""What the limits engine answers: violations, warnings, the dose, and an approved plan or none.

``ApprovedPlan`` is the only form in which a plan may travel below the safety layer: drivers and the
session runner accept this type, and only the limits engine can create it, so an unchecked plan
cannot reach a device by accident. Violations and warnings are data (layer, field path, value,
bound, source) as well as a sentence, so the API, the store and the practitioner's screen can each
show them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NoReturn

from pydantic import BaseModel, ConfigDict, Field, computed_field

from sessionlog.safety.amplitude_range import LiveChangeContext
from sessionlog.safety.capabilities import DeviceCapabilities
from sessionlog.safety.dose import PlanDose, plan_dose
from sessionlog.safety.plan import StimulationPlan
from sessionlog.safety.screening import ClientContext, ContraindicationOverride
from sessionlog.safety.site_policy import SitePolicy


class Layer(StrEnum):
    """The limits layers, outermost first. Every layer applies; the most restrictive bound wins."""

    STANDARD = "standard"
    DEVICE = "device"
    SITE = "site"
    PRESCRIPTION = "prescription"


class ViolationCode(StrEnum):
    """What kind of bound a violation broke, for programs that react to specific refusals."""

    AMPLITUDE_ABOVE_MAX = "amplitude_above_max"
    AMPLITUDE_BELOW_MIN = "amplitude_below_min"
    AMPLITUDE_NOT_ON_STEP = "amplitude_not_on_step"
    UNIT_MIXUP = "unit_mixup"
    DC_AMPLITUDE_ABOVE_MAX = "dc_amplitude_above_max"
    RMS_CURRENT_ABOVE_MAX = "rms_current_above_max"
    PULSE_ENERGY_ABOVE_MAX = "pulse_energy_above_max"
    PEAK_VOLTAGE_ABOVE_MAX = "peak_voltage_above_max"
    CURRENT_DENSITY_ABOVE_MAX = "current_density_above_max"
    DC_CURRENT_DENSITY_ABOVE_MAX = "dc_current_density_above_max"
    POWER_DENSITY_ABOVE_MAX = "power_density_above_max"
    PULSE_WIDTH_BELOW_MIN = "pulse_width_below_min"
    PULSE_WIDTH_ABOVE_MAX = "pulse_width_above_max"
    PULSE_WIDTH_NOT_ON_STEP = "pulse_width_not_on_step"
    PULSE_LONGER_THAN_PERIOD = "pulse_longer_than_period"
    FREQUENCY_BELOW_MIN = "frequency_below_min"
    FREQUENCY_ABOVE_MAX = "frequency_above_max"
    RAMP_ABOVE_MAX = "ramp_above_max"
    RAMPS_LONGER_THAN_ON_PERIOD = "ramps_longer_than_on_period"
    DURATION_ABOVE_MAX = "duration_above_max"
    BODY_SITE_FORBIDDEN = "body_site_forbidden"
    BODY_SITE_NOT_PRESCRIBED = "body_site_not_prescribed"
    MODALITY_UNSUPPORTED = "modality_unsupported"
    MODALITY_NOT_PRESCRIBED = "modality_not_prescribed"
    CHANNEL_UNAVAILABLE = "channel_unavailable"
    WAVEFORM_UNSUPPORTED = "waveform_unsupported"
    PHASE_TYPE_UNSUPPORTED = "phase_type_unsupported"
    CONTRAINDICATION = "contraindication"


class WarningCode(StrEnum):
    """Conditions that are allowed only with an explicit, logged acknowledgement."""

    CURRENT_DENSITY_HIGH = "current_density_high"


Scalar = int | float | str


class Violation(BaseModel):
    """One broken bound: the layer, the field of the plan (or its dose), the value and the bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer: Layer
    code: ViolationCode
    field: str
    """A path into the plan (``channels[0].amplitude_ua``) or its dose (``dose.channels[0]...``)."""
    value: Scalar
    bound: Scalar | None
    message: str
    source: str | None = None
    """Where the bound comes from; always set for the standard layer."""


class SafetyWarning(BaseModel):
    """A condition that needs a practitioner's acknowledgement before the plan is approved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer: Layer
    code: WarningCode
    field: str
    value: Scalar
    threshold: Scalar
    message: str
    source: str | None = None
    acknowledged: bool


_ENGINE_TOKEN = object()


class ApprovedPlan:
    """A plan that passed every layer, with its dose and the context it was checked in.

    Only the limits engine creates these (the constructor demands a private token), and the object
    is immutable, so holding one proves the plan was approved against ``layers``. A driver can also
    compare ``capabilities`` with its own to be sure the device layer it relied on was its own.
    """

    __slots__ = (
        "_acknowledged_fields",
        "_acknowledged_warnings",
        "_capabilities",
        "_client",
        "_dose",
        "_layers",
        "_live_changes",
        "_plan",
        "_site_policy",
    )

    _plan: StimulationPlan
    _dose: PlanDose | None
    _layers: tuple[Layer, ...]
    _capabilities: DeviceCapabilities | None
    _site_policy: SitePolicy | None
    _client: ClientContext | None
    _acknowledged_warnings: frozenset[WarningCode]
    _acknowledged_fields: frozenset[tuple[WarningCode, str]]
    _live_changes: LiveChangeContext | None

    def __init__(
        self,
        token: object,
        *,
        plan: StimulationPlan,
        dose: PlanDose | None,
        layers: tuple[Layer, ...],
        capabilities: DeviceCapabilities | None,
        site_policy: SitePolicy | None,
        client: ClientContext | None,
        acknowledged_warnings: frozenset[WarningCode],
        acknowledged_fields: frozenset[tuple[WarningCode, str]] = frozenset(),
        live_changes: LiveChangeContext | None = None,
    ) -> None:
        """``dose`` None: the plan's dose, computed when first read (a live change is approved
        many times a second, and its figures are read far less often). ``live_changes``: what
        the engine keeps for the live changes of this plan (``LimitsEngine.approve_change``)."""
        if token is not _ENGINE_TOKEN:
            raise TypeError("an ApprovedPlan is created only by LimitsEngine.approve")
        # Past the immutability guard of __setattr__; one approval per live change, so inline.
        initialise = object.__setattr__
        initialise(self, "_plan", plan)
        initialise(self, "_dose", dose)
        initialise(self, "_layers", layers)
        initialise(self, "_capabilities", capabilities)
        initialise(self, "_site_policy", site_policy)
        initialise(self, "_client", client)
        initialise(self, "_acknowledged_warnings", acknowledged_warnings)
        initialise(self, "_acknowledged_fields", acknowledged_fields)
        initialise(self, "_live_changes", live_changes)

    def __init_subclass__(cls, **kwargs: object) -> NoReturn:
        # A subclass could skip the token check and answer with any plan while passing
        # ``isinstance``; drivers also check the exact type.
        raise TypeError("ApprovedPlan cannot be subclassed: only the limits engine approves plans")

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("an ApprovedPlan is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("an ApprovedPlan is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("an ApprovedPlan cannot be copied or pickled; approve the plan again")

    @property
    def plan(self) -> StimulationPlan:
        return self._plan

    @property
    def dose(self) -> PlanDose:
        dose = self._dose
        if dose is None:
            # Pure and deterministic, so two threads computing it at once store equal figures.
            dose = plan_dose(self._plan)
            object.__setattr__(self, "_dose", dose)
        return dose

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers the plan was checked against (device and site are absent if not supplied)."""
        return self._layers

    @property
    def capabilities(self) -> DeviceCapabilities | None:
        return self._capabilities

    @property
    def site_policy(self) -> SitePolicy | None:
        return self._site_policy

    @property
    def client(self) -> ClientContext | None:
        return self._client

    @property
    def acknowledged_warnings(self) -> frozenset[WarningCode]:
        """Warnings raised and acknowledged for this approval; the caller logs them."""
        return self._acknowledged_warnings

    @property
    def acknowledged_fields(self) -> frozenset[tuple[WarningCode, str]]:
        """Each warning raised and acknowledged, as (code, field): what a live change of this
        plan carries over without a new acknowledgement. A warning of the same code on another
        field (another channel's density, say) was not seen when this one was acknowledged."""
        return self._acknowledged_fields

    def __repr__(self) -> str:
        layers = ", ".join(self._layers)
        return f"ApprovedPlan(modality={self._plan.modality}, layers=[{layers}])"


class Verdict(BaseModel):
    """The engine's answer: ``approved`` only with no violations and every warning acknowledged."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    approved: bool
    violations: tuple[Violation, ...]
    warnings: tuple[SafetyWarning, ...]
    layers: tuple[Layer, ...]
    overrides_applied: tuple[ContraindicationOverride, ...] = ()
    """Contraindication overrides the approval relied on (to be recorded with the session)."""
    approved_plan: ApprovedPlan | None = Field(default=None, exclude=True)
    computed_dose: PlanDose | None = Field(default=None, exclude=True, repr=False)
    """The dose as the engine computed it with the verdict; None for an approved live change,
    whose dose its approved plan computes when first read (see ``dose``)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dose(self) -> PlanDose:
        """The plan's derived dose figures, part of the verdict and of its serialised form."""
        if self.computed_dose is not None:
            return self.computed_dose
        if self.approved_plan is None:
            raise ValueError("a verdict without an approved plan carries its computed dose")
        return self.approved_plan.dose

    @property
    def reasons(self) -> list[str]:
        """Every violation and unacknowledged warning as a sentence, in layer order."""
        return [v.message for v in self.violations] + [
            w.message for w in self.warnings if not w.acknowledged
        ]
