"""A live change is accepted only if it was approved in the running plan's context.

The driver checks every plan against its own capabilities; for a live change it also holds the
change to the layers, site policy and client the running plan was approved with, so that an
approval that left out the site policy or the prescription cannot raise the intensity past them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionlog.hal import Driver, PlanNotApprovedError, open_device
from sessionlog.safety import (
    ClientContext,
    LimitsEngine,
    ModalityPolicy,
    Prescription,
    SitePolicy,
    StimulationPlan,
)
from sessionlog.safety.verdict import ApprovedPlan
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.emulator import StimulatorEmulator

ENGINE = LimitsEngine()
SITE = SitePolicy(name="Clinic", ems=ModalityPolicy(max_amplitude_ua=35_000))
CLIENT = ClientContext(prescription=Prescription(max_amplitude_ua=30_000))


def plan(amplitude_ua: int) -> StimulationPlan:
    return StimulationPlan.model_validate(
        {
            "modality": "ems",
            "duration_s": 600,
            "electrode": {"body_site": "thigh_anterior", "area_cm2": 50},
            "channels": [
                {
                    "channel": 1,
                    "amplitude_ua": amplitude_ua,
                    "pulse_width_us": 300,
                    "frequency_hz": 35,
                }
            ],
        }
    )


def set_amplitudes(driver: Driver) -> list[int]:
    emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
    return [
        entry.message.amplitude_ua
        for entry in emulator.command_log
        if entry.command is wire.Command.SET_AMPLITUDE
    ]


@pytest.fixture
def running() -> Iterator[tuple[Driver, ApprovedPlan]]:
    with open_device("sim://?channels=2&seed=3", driver="simulated") as driver:
        verdict = ENGINE.approve(
            plan(30_000), capabilities=driver.capabilities, site_policy=SITE, client=CLIENT
        )
        assert verdict.approved_plan is not None, verdict.reasons
        driver.apply(verdict.approved_plan)
        driver.start()
        yield driver, verdict.approved_plan


def test_a_change_approved_without_the_site_policy_and_prescription_is_refused(
    running: tuple[Driver, ApprovedPlan],
) -> None:
    driver, approved = running
    # Within the standard and device layers, beyond both the site's 35 mA and the client's 30 mA.
    looser = ENGINE.approve(plan(60_000), capabilities=driver.capabilities).approved_plan
    assert looser is not None
    assert ENGINE.approve_change(approved, channel=1, amplitude_ua=60_000).approved_plan is None

    with pytest.raises(PlanNotApprovedError, match="site policy, client"):
        driver.set_amplitude(looser, channel=1)

    assert set_amplitudes(driver) == []
    assert driver.applied_plan is approved


def test_a_change_approved_with_another_client_is_refused(
    running: tuple[Driver, ApprovedPlan],
) -> None:
    driver, _ = running
    other_client = ClientContext(prescription=Prescription(max_amplitude_ua=60_000))
    other = ENGINE.approve(
        plan(28_000), capabilities=driver.capabilities, site_policy=SITE, client=other_client
    ).approved_plan
    assert other is not None

    with pytest.raises(PlanNotApprovedError, match="client"):
        driver.set_amplitude(other, channel=1)
    assert set_amplitudes(driver) == []


def test_a_change_approved_in_the_running_context_is_sent_and_becomes_the_applied_plan(
    running: tuple[Driver, ApprovedPlan],
) -> None:
    driver, approved = running
    change = ENGINE.approve_change(approved, channel=1, amplitude_ua=25_000).approved_plan
    assert change is not None
    # A fresh approval of the same plan in an equal context is the same context.
    fresh = ENGINE.approve(
        plan(27_000), capabilities=driver.capabilities, site_policy=SITE, client=CLIENT
    ).approved_plan
    assert fresh is not None

    driver.set_amplitude(change, channel=1)
    driver.set_amplitude(fresh, channel=1)

    assert set_amplitudes(driver) == [25_000, 27_000]
    assert driver.applied_plan is fresh
