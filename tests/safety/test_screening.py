"""Contraindications refuse a plan unless an authorised override with a reason is recorded."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sessionlog.safety import (
    ClientContext,
    Contraindication,
    ContraindicationOverride,
    Layer,
    LimitsEngine,
    Modality,
    ViolationCode,
)

from .plans import make_plan, only

ENGINE = LimitsEngine()


def test_contraindication_without_override_refuses_the_plan() -> None:
    client = ClientContext(contraindications={Contraindication.ACTIVE_IMPLANT})
    verdict = ENGINE.approve(make_plan(Modality.EMS), client=client)

    assert not verdict.approved
    assert verdict.approved_plan is None
    violation = only(verdict.violations, ViolationCode.CONTRAINDICATION)
    assert violation.layer is Layer.PRESCRIPTION
    assert violation.value == "active_implant"
    assert "override" in violation.message


def test_contraindication_with_override_approves_and_the_verdict_records_the_override() -> None:
    override = ContraindicationOverride(
        contraindication=Contraindication.METAL_IMPLANT_NEAR_SITE,
        authorised_by="Dr. A. Example",
        reason="Plate fixed 2019, site 20 cm away from the electrodes",
    )
    client = ClientContext(
        contraindications={Contraindication.METAL_IMPLANT_NEAR_SITE}, overrides=[override]
    )
    verdict = ENGINE.approve(make_plan(Modality.EMS), client=client)

    assert verdict.approved
    assert verdict.overrides_applied == (override,)
    assert verdict.approved_plan is not None
    assert verdict.approved_plan.client == client


def test_each_contraindication_needs_its_own_override() -> None:
    client = ClientContext(
        contraindications={Contraindication.PREGNANCY, Contraindication.EPILEPSY},
        overrides=[
            ContraindicationOverride(
                contraindication=Contraindication.PREGNANCY,
                authorised_by="Dr. B",
                reason="Distal site, obstetrician consulted",
            )
        ],
    )
    verdict = ENGINE.approve(make_plan(Modality.MICROCURRENT), client=client)

    assert not verdict.approved
    assert only(verdict.violations, ViolationCode.CONTRAINDICATION).value == "epilepsy"
    assert [o.contraindication for o in verdict.overrides_applied] == [Contraindication.PREGNANCY]


def test_override_for_a_contraindication_the_client_does_not_have_is_not_recorded() -> None:
    client = ClientContext(
        overrides=[
            ContraindicationOverride(
                contraindication=Contraindication.PREGNANCY, authorised_by="Dr. B", reason="n/a"
            )
        ]
    )
    verdict = ENGINE.approve(make_plan(Modality.EMS), client=client)

    assert verdict.approved
    assert verdict.overrides_applied == ()


@pytest.mark.parametrize(("authorised_by", "reason"), [("", "why"), ("Dr. C", "   ")])
def test_an_override_without_a_named_person_or_a_reason_is_not_an_override(
    authorised_by: str, reason: str
) -> None:
    with pytest.raises(ValidationError):
        ContraindicationOverride(
            contraindication=Contraindication.EPILEPSY, authorised_by=authorised_by, reason=reason
        )


@pytest.mark.parametrize(
    ("authorised_by", "reason", "message"),
    [
        ("Dr.\x00C", "why", "NUL"),
        ("Dr. C\n", "why", "control characters"),
        ("Dr. C", "seen\x0b", "control characters"),
        ("\u00a0", "why", "only whitespace"),
    ],
)
def test_an_override_refuses_text_a_record_or_an_export_cannot_hold(
    authorised_by: str, reason: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ContraindicationOverride(
            contraindication=Contraindication.EPILEPSY, authorised_by=authorised_by, reason=reason
        )


def test_an_override_reason_may_span_lines() -> None:
    override = ContraindicationOverride(
        contraindication=Contraindication.EPILEPSY,
        authorised_by="Dr. C",
        reason="Seizure-free for 5 years.\nNeurologist consulted.",
    )
    assert override.reason.count("\n") == 1
