"""Site policy: a clinic's own, narrower limits, read from a TOML or JSON file.

The third limits layer. A site may lower maxima per modality, forbid further body sites and decide
whether practitioners may acknowledge warnings (if not, a plan that raises a warning cannot be
approved at that site). A policy can only narrow: it has no way to widen a standard or device limit.
Amplitudes state their unit by field name, as everywhere else.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sessionlog.safety.plan import (
    MAX_REPRESENTABLE_AMPLITUDE_UA,
    BodySite,
    Modality,
    check_microcurrent_ceiling,
    current_to_ua,
)


class SitePolicyError(ValueError):
    """A site policy that cannot be used; the message names the file and the offending field."""


class ModalityPolicy(BaseModel):
    """A site's maxima for one modality. Unset fields do not restrict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_amplitude_ua: int | None = Field(default=None, ge=0, le=MAX_REPRESENTABLE_AMPLITUDE_UA)
    max_frequency_hz: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_pulse_width_us: int | None = Field(default=None, gt=0)
    max_duration_s: int | None = Field(default=None, gt=0)
    max_current_density_ma_per_cm2: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    forbidden_body_sites: frozenset[BodySite] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _explicit_current_unit(cls, data: Any) -> Any:
        if isinstance(data, dict) and (
            data.get("max_amplitude_ua") is not None or data.get("max_amplitude_ma") is not None
        ):
            return current_to_ua(data, "max_amplitude")
        return data


class SitePolicy(BaseModel):
    """The whole policy of one site: per-modality maxima plus rules for every modality."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, max_length=200)
    ems: ModalityPolicy = ModalityPolicy()
    microcurrent: ModalityPolicy = ModalityPolicy()
    forbidden_body_sites: frozenset[BodySite] = frozenset()
    """Sites forbidden at this site for every modality, in addition to the standard ones."""
    warnings_acknowledgeable: bool = True
    """Whether a practitioner's acknowledgement may clear a warning; if false, warnings block."""

    @field_validator("microcurrent")
    @classmethod
    def _microcurrent_ceiling_below_1_ma(cls, policy: ModalityPolicy) -> ModalityPolicy:
        check_microcurrent_ceiling(policy.max_amplitude_ua, "max_amplitude")
        return policy

    def for_modality(self, modality: Modality) -> ModalityPolicy:
        return self.ems if modality is Modality.EMS else self.microcurrent

    def forbidden_sites_for(self, modality: Modality) -> frozenset[BodySite]:
        return self.forbidden_body_sites | self.for_modality(modality).forbidden_body_sites


def _field_path(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def parse_site_policy(data: Any, *, origin: str = "site policy") -> SitePolicy:
    """Validate already-decoded policy data; errors name ``origin`` and each offending field."""
    try:
        return SitePolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_field_path(tuple(error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise SitePolicyError(f"{origin}: {problems}") from exc


def load_site_policy(path: str | Path) -> SitePolicy:
    """Read a ``.toml`` or ``.json`` site policy file.

    Raises SitePolicyError naming the file and the field (or line, for a syntax error), so a bad
    file stops the service at start-up instead of leaving the site layer silently absent.
    """
    file_path = Path(path)
    suffix = file_path.suffix.lower()
    if suffix not in {".toml", ".json"}:
        raise SitePolicyError(f"{file_path}: a site policy file must end in .toml or .json")
    try:
        raw = file_path.read_bytes()
    except OSError as exc:
        raise SitePolicyError(f"{file_path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
        data: Any = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SitePolicyError(f"{file_path}: not valid {suffix[1:].upper()}: {exc}") from exc
    return parse_site_policy(data, origin=str(file_path))
