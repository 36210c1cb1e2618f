"""Body sites that are never allowed, per modality; facial sites are allowed for microcurrent."""

from __future__ import annotations

import pytest

from sessionlog.safety import BodySite, Layer, LimitsEngine, Modality, ViolationCode

from .plans import codes, make_plan, only

ENGINE = LimitsEngine()

EMS_FORBIDDEN = [
    BodySite.HEAD_TRANSCRANIAL,
    BodySite.EYES,
    BodySite.MOUTH,
    BodySite.NECK_ANTERIOR,
    BodySite.CHEST_TRANSTHORACIC,
]
MICROCURRENT_FORBIDDEN = [BodySite.EYES, BodySite.NECK_ANTERIOR, BodySite.CHEST_TRANSTHORACIC]
FACIAL = [BodySite.FOREHEAD, BodySite.FACE, BodySite.CHEEK, BodySite.JAW, BodySite.MOUTH]


@pytest.mark.parametrize("site", EMS_FORBIDDEN)
def test_ems_on_a_forbidden_site_is_rejected_by_the_standard_layer(site: BodySite) -> None:
    verdict = ENGINE.approve(make_plan(Modality.EMS, body_site=site))

    assert not verdict.approved
    violation = only(verdict.violations, ViolationCode.BODY_SITE_FORBIDDEN)
    assert violation.layer is Layer.STANDARD
    assert violation.field == "electrode.body_site"
    assert violation.value == site.value
    assert violation.source is not None
    assert "IEC 60601-2-10" in violation.source


@pytest.mark.parametrize("site", MICROCURRENT_FORBIDDEN)
def test_microcurrent_on_a_forbidden_site_is_rejected(site: BodySite) -> None:
    verdict = ENGINE.approve(make_plan(Modality.MICROCURRENT, body_site=site))

    assert ViolationCode.BODY_SITE_FORBIDDEN in codes(verdict)
    assert not verdict.approved


@pytest.mark.parametrize("site", FACIAL)
def test_microcurrent_on_a_facial_site_is_approved(site: BodySite) -> None:
    assert ENGINE.approve(make_plan(Modality.MICROCURRENT, body_site=site)).approved


@pytest.mark.parametrize(
    "site", [s for s in BodySite if s not in EMS_FORBIDDEN], ids=lambda s: s.value
)
def test_ems_on_any_other_site_passes_the_site_check(site: BodySite) -> None:
    verdict = ENGINE.approve(make_plan(Modality.EMS, body_site=site))
    assert ViolationCode.BODY_SITE_FORBIDDEN not in codes(verdict)


def test_head_transcranial_is_allowed_for_microcurrent_but_not_for_ems() -> None:
    site = BodySite.HEAD_TRANSCRANIAL
    assert ENGINE.approve(make_plan(Modality.MICROCURRENT, body_site=site)).approved
    assert not ENGINE.approve(make_plan(Modality.EMS, body_site=site)).approved
