"""The limits dry run: what the engine would say about a plan, before any device is touched."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Security

from sessionlog.api.auth import authorize
from sessionlog.api.deps import SessionDep, SettingsDep
from sessionlog.api.problems import PROBLEM_RESPONSES, SITE_POLICY_RESPONSES
from sessionlog.safety import Verdict
from sessionlog.schemas import LimitsCheckRequest, VerdictPublic, amplitude_ranges_public
from sessionlog.security.principal import Principal
from sessionlog.security.scopes import Scope
from sessionlog.sessions.approval import ENGINE, dry_run

router = APIRouter(prefix="/limits", tags=["limits"], responses=PROBLEM_RESPONSES)


def verdict_public(verdict: Verdict) -> VerdictPublic:
    approved = verdict.approved_plan
    return VerdictPublic(
        approved=verdict.approved,
        violations=list(verdict.violations),
        warnings=list(verdict.warnings),
        dose=verdict.dose,
        layers=list(verdict.layers),
        overrides_applied=list(verdict.overrides_applied),
        reasons=verdict.reasons,
        amplitude_ranges=None
        if approved is None
        else amplitude_ranges_public(ENGINE.amplitude_ranges(approved)),
    )


@router.post("/check", response_model=VerdictPublic, responses=SITE_POLICY_RESPONSES)
def check_plan(
    data: LimitsCheckRequest,
    db: SessionDep,
    settings: SettingsDep,
    _: Annotated[Principal, Security(authorize, scopes=[Scope.LIMITS_CHECK])],
) -> VerdictPublic:
    """Run every applicable limits layer over the plan and return the verdict and dose figures.

    The standard layer always runs; the device layer when `device_id` is given; the site layer
    when the service has a site policy; the prescription layer when `client_id` is given. A
    `device_id` whose device has never been connected (so its driver never reported its
    capabilities) is a 422 naming `device_id`, never an answer without the device layer: `layers`
    lists exactly the layers that ran. Nothing is stored.
    """
    verdict = dry_run(
        db,
        settings,
        data.plan,
        client_id=data.client_id,
        device_id=data.device_id,
        overrides=data.overrides,
        acknowledged_warnings=frozenset(data.acknowledged_warnings),
    )
    return verdict_public(verdict)
