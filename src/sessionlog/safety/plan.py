"""The stimulation plan: what a practitioner asks a device to deliver.

This is the contract between every layer: the API and CLI parse it, the limits engine approves it, the
session runner hands the approved form to a driver, and the store records it. Currents are carried as
integer microamperes; the input states its unit by the field it uses (``amplitude_ua`` or
``amplitude_ma``), never by a guess. Parsing does not judge safety (a record of what a standalone device
delivered must be storable even when it broke a limit); only the limits engine decides what is allowed.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sessionlog.field_errors import FieldValueError
from sessionlog.fields import ShortText

UA_PER_MA = 1000

MIN_ELECTRODE_AREA_CM2 = 0.01
"""1 mm². Densities divide by the area; a smaller electrode is not a real one, and an area near zero
would make every density infinite."""

MAX_CHANNELS = 64
"""Output channels a plan may use (numbered 1 to 64)."""

MAX_REPRESENTABLE_AMPLITUDE_UA = 1_000_000
"""1 A. Not a safety limit (that is the limits engine's job) but the edge of what any record can mean;
the representational bounds below keep every number storable in a 32-bit column."""


class Modality(StrEnum):
    """The two stimulation regimes; each has its own standard limits profile."""

    EMS = "ems"
    MICROCURRENT = "microcurrent"


class Waveform(StrEnum):
    RECTANGULAR = "rectangular"
    SINE = "sine"
    TRIANGULAR = "triangular"
    DC = "dc"


class PhaseType(StrEnum):
    BIPHASIC_SYMMETRIC = "biphasic_symmetric"
    BIPHASIC_ASYMMETRIC = "biphasic_asymmetric"
    MONOPHASIC = "monophasic"


class Polarity(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    ALTERNATING = "alternating"


class BodySite(StrEnum):
    """Electrode sites. Some are never allowed for a modality (see the standard profiles)."""

    HEAD_TRANSCRANIAL = "head_transcranial"
    EYES = "eyes"
    FOREHEAD = "forehead"
    FACE = "face"
    CHEEK = "cheek"
    JAW = "jaw"
    MOUTH = "mouth"
    NECK_ANTERIOR = "neck_anterior"
    NECK_POSTERIOR = "neck_posterior"
    SHOULDER = "shoulder"
    UPPER_ARM = "upper_arm"
    FOREARM = "forearm"
    HAND = "hand"
    CHEST_TRANSTHORACIC = "chest_transthoracic"
    CHEST_UNILATERAL = "chest_unilateral"
    UPPER_BACK = "upper_back"
    LOWER_BACK = "lower_back"
    ABDOMEN = "abdomen"
    GLUTEAL = "gluteal"
    THIGH_ANTERIOR = "thigh_anterior"
    THIGH_POSTERIOR = "thigh_posterior"
    KNEE = "knee"
    CALF = "calf"
    SHIN = "shin"
    FOOT = "foot"


class Side(StrEnum):
    LEFT = "left"
    RIGHT = "right"
    BILATERAL = "bilateral"
    MIDLINE = "midline"


class ElectrodePlacement(BaseModel):
    """Where the electrodes sit and how large they are (the area sets current and power density)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    body_site: BodySite
    side: Side | None = None
    area_cm2: float = Field(
        ge=MIN_ELECTRODE_AREA_CM2,
        le=1000,
        allow_inf_nan=False,
        description="Area of one electrode, cm² (0.01 cm² = 1 mm² at the least)",
    )


def current_to_ua(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Normalise ``<prefix>_ua`` / ``<prefix>_ma`` to an integer ``<prefix>_ua``.

    Exactly one of the two must be given. A value in mA that is not a whole number of µA is refused
    rather than rounded: a silent rounding of a current is a guess.
    """
    ua_key, ma_key = f"{prefix}_ua", f"{prefix}_ma"
    has_ua, has_ma = data.get(ua_key) is not None, data.get(ma_key) is not None
    if has_ua and has_ma:
        raise FieldValueError(ua_key, f"give {ua_key} or {ma_key}, not both")
    if not has_ua and not has_ma:
        raise FieldValueError(
            ua_key, f"{ua_key} or {ma_key} is required (the unit must be explicit)"
        )
    if isinstance(data.get(ua_key), bool):
        # JSON true is not a current; pydantic would read it as 1 µA.
        raise FieldValueError(
            ua_key, f"{ua_key} must be a whole number of microamperes, not a boolean"
        )
    if ma_key not in data:
        return data  # already in µA, as every plan the service itself builds
    out = {k: v for k, v in data.items() if k != ma_key}
    if has_ma:
        value_ma = data[ma_key]
        if isinstance(value_ma, bool) or not isinstance(value_ma, int | float):
            raise FieldValueError(ma_key, f"{ma_key} must be a number")
        if isinstance(value_ma, float) and not math.isfinite(value_ma):
            raise FieldValueError(ma_key, f"{ma_key} must be finite")
        if value_ma < 0:
            raise FieldValueError(ma_key, f"{ma_key} must not be negative")
        if value_ma > MAX_REPRESENTABLE_AMPLITUDE_UA / UA_PER_MA:
            # Refused here rather than by the µA field's bound: a value this large would overflow
            # the conversion below (an int beyond a float's range, or an infinite product).
            raise FieldValueError(
                ma_key, f"{ma_key} must be at most {MAX_REPRESENTABLE_AMPLITUDE_UA // UA_PER_MA} mA"
            )
        value_ua = value_ma * UA_PER_MA
        if abs(value_ua - round(value_ua)) > 1e-6:
            raise FieldValueError(
                ma_key, f"{ma_key}={value_ma} is not a whole number of microamperes"
            )
        out[ua_key] = round(value_ua)
    return out


def check_microcurrent_ceiling(max_amplitude_ua: int | None, prefix: str) -> None:
    """Refuse a microcurrent ceiling of 1 mA or more: microcurrent is below 1 mA by definition, so
    such a ceiling restricts nothing and is almost certainly a value in µA given in mA (the 1000×
    mix-up a plan's amplitude is refused for, here in the layer meant to narrow it)."""
    if max_amplitude_ua is None or max_amplitude_ua < UA_PER_MA:
        return
    raise ValueError(
        f"a microcurrent {prefix} of {max_amplitude_ua} µA is not below 1 mA, so it would "
        f"restrict nothing: most likely a value in µA given in mA (give {prefix}_ua, below 1000)"
    )


class ChannelPlan(BaseModel):
    """One output channel's parameters. Time fields carry their unit in the name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: int = Field(ge=1, le=MAX_CHANNELS, description="1-based output channel number")
    amplitude_ua: int = Field(
        ge=0,
        le=MAX_REPRESENTABLE_AMPLITUDE_UA,
        description="Peak amplitude in µA. Input may instead give amplitude_ma (mA); never both.",
    )
    pulse_width_us: int = Field(
        gt=0,
        le=10_000_000,
        description="Duration of one phase in µs (for biphasic pulses, each phase)",
    )
    frequency_hz: float = Field(gt=0, le=100_000, allow_inf_nan=False)
    waveform: Waveform = Waveform.RECTANGULAR
    phase_type: PhaseType = PhaseType.BIPHASIC_SYMMETRIC
    polarity: Polarity = Polarity.ALTERNATING
    ramp_up_s: float = Field(default=0.0, ge=0, le=3600, allow_inf_nan=False)
    ramp_down_s: float = Field(default=0.0, ge=0, le=3600, allow_inf_nan=False)
    on_time_s: float | None = Field(default=None, ge=0.01, le=3600, allow_inf_nan=False)
    off_time_s: float | None = Field(default=None, ge=0, le=3600, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _explicit_current_unit(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return current_to_ua(data, "amplitude")
        return data

    @model_validator(mode="after")
    def _duty_cycle_complete(self) -> Self:
        if (self.on_time_s is None) != (self.off_time_s is None):
            missing = "on_time_s" if self.on_time_s is None else "off_time_s"
            raise FieldValueError(
                missing, "on_time_s and off_time_s go together: give both or neither"
            )
        return self

    @property
    def amplitude_ma(self) -> float:
        return self.amplitude_ua / UA_PER_MA


class Prescription(BaseModel):
    """A practitioner's per-client ceiling: the innermost limits layer. Unset fields do not restrict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modalities: tuple[Modality, ...] | None = None
    max_amplitude_ua: int | None = Field(default=None, ge=0, le=MAX_REPRESENTABLE_AMPLITUDE_UA)
    max_frequency_hz: float | None = Field(default=None, gt=0, le=100_000, allow_inf_nan=False)
    max_pulse_width_us: int | None = Field(default=None, gt=0, le=10_000_000)
    max_duration_s: int | None = Field(default=None, gt=0, le=86_400)
    allowed_body_sites: tuple[BodySite, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _explicit_current_unit(cls, data: Any) -> Any:
        if isinstance(data, dict) and (
            data.get("max_amplitude_ua") is not None or data.get("max_amplitude_ma") is not None
        ):
            return current_to_ua(data, "max_amplitude")
        return data

    @model_validator(mode="after")
    def _microcurrent_ceiling_below_1_ma(self) -> Self:
        if self.modalities and set(self.modalities) == {Modality.MICROCURRENT}:
            check_microcurrent_ceiling(self.max_amplitude_ua, "max_amplitude")
        return self


ChannelList = Annotated[
    tuple[ChannelPlan, ...],
    Field(json_schema_extra={"minItems": 1, "maxItems": MAX_CHANNELS}),
]
"""A tuple, so that a plan (and the ApprovedPlan holding it) cannot be changed after approval. Its
length is checked by the plan (``_channel_count``), after the channels themselves: pydantic's own
tuple length check would add a spurious "too short" error to every invalid channel."""


class StimulationPlan(BaseModel):
    """A complete request to stimulate: one modality, one or more channels, a duration and a site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: Modality
    channels: ChannelList
    duration_s: int = Field(gt=0, le=86_400, description="Planned session duration in seconds")
    electrode: ElectrodePlacement
    program_name: ShortText | None = None

    @field_validator("channels")
    @classmethod
    def _channel_count(cls, channels: tuple[ChannelPlan, ...]) -> tuple[ChannelPlan, ...]:
        if not 1 <= len(channels) <= MAX_CHANNELS:
            raise ValueError(f"a plan has 1 to {MAX_CHANNELS} channels, not {len(channels)}")
        return channels

    @model_validator(mode="after")
    def _channels_unique(self) -> Self:
        numbers = [c.channel for c in self.channels]
        if len(numbers) != len(set(numbers)):
            raise FieldValueError("channels", "each channel number may appear only once")
        return self

    def channel(self, number: int) -> ChannelPlan:
        for channel in self.channels:
            if channel.channel == number:
                return channel
        raise KeyError(number)
