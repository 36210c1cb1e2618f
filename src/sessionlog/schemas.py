"""Request and response models of the API (the Create / Update / Public split per resource).

Input models forbid unknown fields and carry every bound the store needs, so that anything they accept
can be written; output models are built from table rows with ``from_attributes``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlmodel import SQLModel

from sessionlog.fields import Code, LongText, PastTimestamp, RecordId, ShortText, SingleLine
from sessionlog.hal.registry import ENTRY_POINT_GROUP, available_drivers
from sessionlog.safety.amplitude_range import AmplitudeRange
from sessionlog.safety.dose import PlanDose
from sessionlog.safety.plan import ChannelPlan, Modality, Prescription, StimulationPlan
from sessionlog.safety.screening import Contraindication, ContraindicationOverride
from sessionlog.safety.verdict import Layer, SafetyWarning, Violation, WarningCode
from sessionlog.store.models import Client, Device, Program, User

Role = Literal["practitioner", "integrator", "analyst", "admin"]
RecordedStatus = Literal["completed", "stopped", "aborted"]
Severity = Literal["mild", "moderate", "severe"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _drop_null_where_refused(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Publish the update rule in OpenAPI: a field that refuses ``null`` is not shown as nullable."""
    refused: frozenset[str] = getattr(model, "null_refused", frozenset())
    for name, prop in schema.get("properties", {}).items():
        if name not in refused or "anyOf" not in prop:
            continue
        kept = [option for option in prop.pop("anyOf") if option != {"type": "null"}]
        prop.pop("default", None)
        if len(kept) == 1:
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept


class _Update(_Input):
    """A partial update (PATCH): a field left out keeps its value, ``null`` empties it.

    Only a field whose column in ``row`` may hold NULL can be emptied. Any other field (a NOT NULL
    column, or a value without a column of its own, like a password) refuses ``null`` here with a
    422 naming it; otherwise the write would fail in the database, as a conflict without a field or
    as a server error, after the request had been accepted.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_null_where_refused)

    row: ClassVar[type[SQLModel]]
    """The table the update writes to; each update schema names it."""
    null_refused: ClassVar[frozenset[str]] = frozenset()
    """The fields that may not be sent as ``null`` (derived from ``row``)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        columns = sa.inspect(cls.row).columns
        cls.null_refused = frozenset(
            name for name in cls.model_fields if name not in columns or not columns[name].nullable
        )

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_nullable(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.null_refused:
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


# Users -------------------------------------------------------------------------------------------


Password = Annotated[
    str,
    Field(
        min_length=12, max_length=200, description="At least 12 characters; stored only as argon2."
    ),
]


class UserCreate(_Input):
    username: Code
    display_name: ShortText
    role: Role
    password: Password | None = Field(
        default=None, description="Omit for accounts that sign in only with API keys (stations)."
    )


class UserUpdate(_Update):
    row = User

    display_name: ShortText | None = None
    role: Role | None = None
    active: bool | None = None
    password: Password | None = None


class UserPublic(_Public):
    id: int
    username: str
    display_name: str
    role: Role
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int


# Clients -----------------------------------------------------------------------------------------


class ClientCreate(_Input):
    code: Code = Field(description="Pseudonymous client code; no other identity is stored.")
    contraindications: list[Contraindication] = Field(default_factory=list, max_length=20)
    prescription: Prescription | None = None
    notes: LongText | None = None


class ClientUpdate(_Update):
    row = Client

    contraindications: list[Contraindication] | None = Field(default=None, max_length=20)
    prescription: Prescription | None = None
    notes: LongText | None = None


class ClientPublic(_Public):
    id: int
    code: str
    contraindications: list[Contraindication]
    prescription: Prescription | None
    notes: str | None
    created_at: datetime
    updated_at: datetime
    version: int


# Devices -----------------------------------------------------------------------------------------


DeviceText = Annotated[str, Field(min_length=1, max_length=128), SingleLine]
"""A device's serial number or model name, bounded by its column."""
FirmwareVersion = Annotated[str, Field(min_length=1, max_length=64), SingleLine]


class DeviceCreate(_Input):
    driver: Code = Field(
        description="Name of a driver installed in the `sessionlog.drivers` entry-point group, "
        "e.g. `simulated`; any other name is refused."
    )
    serial_number: DeviceText
    model: DeviceText
    firmware_version: FirmwareVersion | None = None
    label: ShortText | None = None

    @field_validator("driver")
    @classmethod
    def _driver_installed(cls, driver: str) -> str:
        installed = available_drivers()
        if driver not in installed:
            listed = ", ".join(installed) or "none"
            raise ValueError(
                f"no driver named {driver!r} is installed (entry-point group "
                f"{ENTRY_POINT_GROUP}); available: {listed}"
            )
        return driver


class DeviceUpdate(_Update):
    row = Device

    firmware_version: FirmwareVersion | None = None
    label: ShortText | None = None


class DevicePublic(_Public):
    id: int
    driver: str
    serial_number: str
    model: str
    firmware_version: str | None
    label: str | None
    capabilities: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    version: int


# Programs ----------------------------------------------------------------------------------------


class ProgramCreate(_Input):
    name: ShortText
    modality: Modality
    description: LongText | None = None
    channels: list[ChannelPlan] = Field(min_length=1, max_length=64)
    duration_s: int = Field(gt=0, le=86_400)


class ProgramUpdate(_Update):
    row = Program

    description: LongText | None = None
    channels: list[ChannelPlan] | None = Field(default=None, min_length=1, max_length=64)
    duration_s: int | None = Field(default=None, gt=0, le=86_400)


class ProgramPublic(_Public):
    id: int
    name: str
    modality: Modality
    description: str | None
    channels: list[ChannelPlan]
    duration_s: int
    created_at: datetime
    updated_at: datetime
    version: int


# Sessions ----------------------------------------------------------------------------------------


class AdverseEventCreate(_Input):
    description: LongText = Field(min_length=1)
    severity: Severity
    occurred_at: PastTimestamp | None = Field(
        default=None,
        description="When it happened (not in the future); defaults to the time it is recorded.",
    )


class NoteCreate(_Input):
    text: LongText = Field(min_length=1)
    occurred_at: PastTimestamp | None = Field(
        default=None,
        description="When it happened (not in the future); defaults to the time it is recorded.",
    )


class SessionRecordCreate(_Input):
    """A session delivered on a standalone device, recorded after the fact.

    It is stored even when its parameters break a limit: it is a record of what happened, so it is
    flagged with the violations the standard profile finds instead of being refused.
    """

    client_id: RecordId
    practitioner_id: RecordId
    device_id: RecordId
    program_id: RecordId | None = None
    plan: StimulationPlan
    started_at: PastTimestamp = Field(
        description="ISO 8601 with a zone; not in the future (5 minutes of clock difference are "
        "allowed), from 1970 on"
    )
    ended_at: PastTimestamp = Field(
        description="ISO 8601 with a zone, not before started_at and not in the future"
    )
    status: RecordedStatus = "completed"
    notes: LongText | None = None
    outcome: LongText | None = None
    adverse_events: list[AdverseEventCreate] = Field(default_factory=list, max_length=100)

    @field_validator("ended_at")
    @classmethod
    def _ends_after_start(cls, ended_at: datetime, info: ValidationInfo) -> datetime:
        started_at = info.data.get("started_at")
        if started_at is not None and ended_at < started_at:
            raise ValueError("ended_at is before started_at")
        return ended_at


class SessionCorrection(_Input):
    """A correction of an ended session: a new version that supersedes it, with the reason.

    Fields left out keep their value from the version being corrected. ``null`` is refused for
    every field (a 422 naming it), as an update refuses it for a field that cannot be empty: a
    correction that silently kept the value it was sent to clear would be a new version identical
    to the old one. A correction must change at least one field (the route checks that against the
    version it corrects).
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_null_where_refused)

    corrected_fields: ClassVar[tuple[str, ...]] = (
        "plan",
        "started_at",
        "ended_at",
        "status",
        "notes",
        "outcome",
    )
    """Every field but the reason: what a correction can change."""
    null_refused: ClassVar[frozenset[str]] = frozenset(corrected_fields)

    reason: LongText = Field(min_length=1, description="Why the record is corrected (required)")
    plan: StimulationPlan | None = None
    started_at: PastTimestamp | None = None
    ended_at: PastTimestamp | None = None
    status: RecordedStatus | None = None
    notes: LongText | None = None
    outcome: LongText | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _null_refused(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.null_refused:
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


class EnteredInError(_Input):
    reason: LongText = Field(min_length=1, description="Why the record should not have existed")


class DoseSummary(BaseModel):
    total_charge_uc: float | None
    on_time_s: float | None
    max_current_density_ma_cm2: float | None
    max_power_density_w_cm2: float | None


class SessionPublic(BaseModel):
    id: int
    client_id: int
    practitioner_id: int
    device_id: int
    program_id: int | None
    supersedes_id: int | None
    superseded_by_id: int | None = Field(
        default=None,
        description="The version that corrects this one, if any (this one is then history)",
    )
    mode: str
    status: str
    plan: StimulationPlan
    started_at: datetime | None
    ended_at: datetime | None
    notes: str | None
    outcome: str | None
    out_of_limits: bool
    violations: list[Violation]
    dose: DoseSummary
    end_reason: str | None = Field(description="Why a live session ended (fault, stop, duration)")
    link_errors: dict[str, int] = Field(description="Malformed frames, timeouts and refusals seen")
    created_at: datetime


class SessionEventPublic(_Public):
    id: int
    session_id: int
    kind: str
    occurred_at: datetime
    recorded_at: datetime
    actor_id: int | None
    payload: dict[str, Any]


# Limits ------------------------------------------------------------------------------------------


class LimitsCheckRequest(_Input):
    """A dry run: the verdict a session with this plan would get, for this client and device."""

    plan: StimulationPlan
    client_id: RecordId | None = None
    device_id: RecordId | None = None
    overrides: list[ContraindicationOverride] = Field(default_factory=list, max_length=20)
    acknowledged_warnings: list[WarningCode] = Field(default_factory=list, max_length=20)


class AmplitudeRangePublic(BaseModel):
    """The amplitudes a channel may be set to without a refusal or a warning to acknowledge: zero
    if ``zero_allowed``, and the multiples of ``step_ua`` from ``min_ua`` to ``max_ua`` (both null
    when no amplitude above zero is known to pass)."""

    zero_allowed: bool
    min_ua: int | None
    max_ua: int | None
    step_ua: int

    @classmethod
    def of(cls, allowed: AmplitudeRange) -> AmplitudeRangePublic:
        return cls(
            zero_allowed=allowed.zero_passes,
            min_ua=allowed.floor_ua if allowed.above_zero else None,
            max_ua=allowed.ceiling_ua if allowed.above_zero else None,
            step_ua=allowed.step_ua,
        )


def amplitude_ranges_public(
    ranges: dict[int, AmplitudeRange] | None,
) -> dict[int, AmplitudeRangePublic] | None:
    return None if ranges is None else {n: AmplitudeRangePublic.of(r) for n, r in ranges.items()}


class VerdictPublic(BaseModel):
    """The limits engine's verdict with the dose figures it computed."""

    approved: bool
    violations: list[Violation]
    warnings: list[SafetyWarning]
    dose: PlanDose
    layers: list[Layer]
    overrides_applied: list[ContraindicationOverride]
    reasons: list[str]
    amplitude_ranges: dict[int, AmplitudeRangePublic] | None = Field(
        default=None,
        description="For an approved plan that raised no warning: per channel, the amplitudes a "
        "live change may set in the same context without a refusal or a warning",
    )
