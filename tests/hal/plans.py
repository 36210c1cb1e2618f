"""The plans the HAL tests run, approved and started the way an application does."""

from __future__ import annotations

from sessionlog.hal import Driver
from sessionlog.safety import LimitsEngine, StimulationPlan
from sessionlog.safety.verdict import ApprovedPlan

ENGINE = LimitsEngine()


def ems_plan(*amplitudes_ma: int, pulse_width_us: int = 300) -> StimulationPlan:
    """An EMS plan on the calf with one channel per amplitude, numbered from 1."""
    return StimulationPlan.model_validate(
        {
            "modality": "ems",
            "duration_s": 600,
            "electrode": {"body_site": "calf", "area_cm2": 50},
            "channels": [
                {
                    "channel": n,
                    "amplitude_ma": ma,
                    "pulse_width_us": pulse_width_us,
                    "frequency_hz": 40,
                }
                for n, ma in enumerate(amplitudes_ma, start=1)
            ],
        }
    )


def start_output(driver: Driver, plan: StimulationPlan) -> ApprovedPlan:
    """Approve ``plan`` against the driver's device, apply it and start output."""
    approved = ENGINE.approve(plan, capabilities=driver.capabilities).approved_plan
    assert approved is not None
    driver.apply(approved)
    driver.start()
    return approved


def change(approved: ApprovedPlan, amplitude_ua: int) -> ApprovedPlan:
    """Channel 1 of ``approved`` at ``amplitude_ua``, re-approved as a live change."""
    verdict = ENGINE.approve_change(approved, channel=1, amplitude_ua=amplitude_ua)
    assert verdict.approved_plan is not None, verdict.reasons
    return verdict.approved_plan
