"""Client screening: conditions that rule stimulation out unless an authorised override is recorded.

The list follows the RehaStim 2 instructions for use (contraindications and cautions) and the IEC
60601-2-10 IFU warnings. The prescription layer of the limits engine refuses a plan for a client
with any of these unless an override names who authorised it and why.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sessionlog.fields import LongText, ShortText
from sessionlog.safety.plan import Prescription


class Contraindication(StrEnum):
    ACTIVE_IMPLANT = "active_implant"  # pacemaker, defibrillator, neurostimulator
    PREGNANCY = "pregnancy"
    EPILEPSY = "epilepsy"
    HEART_DISEASE = "heart_disease"
    CANCER_NEAR_SITE = "cancer_near_site"
    BROKEN_SKIN_NEAR_SITE = "broken_skin_near_site"
    RECENT_FRACTURE_NEAR_SITE = "recent_fracture_near_site"
    METAL_IMPLANT_NEAR_SITE = "metal_implant_near_site"
    RECENT_SURGERY_NEAR_SITE = "recent_surgery_near_site"
    IMPAIRED_SENSATION_AT_SITE = "impaired_sensation_at_site"


class ContraindicationOverride(BaseModel):
    """An authorised decision to treat despite a contraindication: who decided, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contraindication: Contraindication
    authorised_by: ShortText
    reason: Annotated[LongText, Field(min_length=1, max_length=2000)]

    @field_validator("authorised_by", "reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank: an override needs a named person and a reason")
        return value


class ClientContext(BaseModel):
    """What the prescription layer knows of a client: prescription, screening and overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prescription: Prescription | None = None
    contraindications: frozenset[Contraindication] = frozenset()
    overrides: tuple[ContraindicationOverride, ...] = ()

    def override_for(self, contraindication: Contraindication) -> ContraindicationOverride | None:
        for override in self.overrides:
            if override.contraindication is contraindication:
                return override
        return None
