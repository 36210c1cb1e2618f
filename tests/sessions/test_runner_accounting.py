"""The runner on a simulated device with a clock the test moves: what it counts as delivered, and
the amplitudes its ramps pass through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sessionlog.hal import SerialTransport
from sessionlog.safety import (
    DeviceCapabilities,
    LimitsEngine,
    ModalityCapabilities,
    StimulationPlan,
)
from sessionlog.sessions.recorder import SessionRecorder
from sessionlog.sessions.runner import RunState, SessionRunner
from sessionlog.store.database import make_engine
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated import register_url_handler
from sessionlog_drivers.simulated.driver import SimulatedDriver
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from tests.rows import insert_session
from tests.waiting import wait_until

ENGINE = LimitsEngine()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plan(amplitude_ma: int, **channel: float) -> StimulationPlan:
    return StimulationPlan.model_validate(
        {
            "modality": "ems",
            "duration_s": 60,
            "electrode": {"body_site": "calf", "area_cm2": 50},
            "channels": [
                {
                    "channel": 1,
                    "amplitude_ma": amplitude_ma,
                    "pulse_width_us": 300,
                    "frequency_hz": 35,
                    **channel,
                }
            ],
        }
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def run(
    engine: Engine, driver: SimulatedDriver, approved_plan: StimulationPlan, tmp_path: Path
) -> tuple[SessionRunner, Clock]:
    clock = Clock()
    approved = ENGINE.approve(approved_plan, capabilities=driver.capabilities).approved_plan
    assert approved is not None
    session_id = insert_session(engine, status="planned")
    recorder = SessionRecorder(engine, session_id, spool_dir=tmp_path)
    runner = SessionRunner(
        session_id=session_id,
        driver=driver,
        approved=approved,
        recorder=recorder,
        engine=ENGINE,
        clock=clock,
    )
    return runner, clock


def emulator_of(driver: SimulatedDriver) -> StimulatorEmulator:
    return driver.transport.port.emulator  # type: ignore[attr-defined, no-any-return]


def connected(driver_class: type[SimulatedDriver]) -> SimulatedDriver:
    register_url_handler()
    driver = driver_class(SerialTransport("sim://?channels=1&seed=1"))
    driver.connect()
    return driver


def test_the_delivered_charge_follows_the_output_step_by_step(
    engine: Engine, tmp_path: Path
) -> None:
    driver = connected(SimulatedDriver)
    try:
        runner, clock = run(engine, driver, plan(10), tmp_path)
        duty = runner.plan.dose.channels[0].duty_fraction
        runner.start()
        clock.now += 3.0
        runner.change_intensity(1, 40_000)
        assert wait_until(lambda: emulator_of(driver).output_amplitude_ua(0) == 40_000)
        clock.now += 0.1
        runner.pause()
        clock.now += 50.0  # paused: nothing flows
        runner.stop()

        assert runner.state is RunState.STOPPED
        assert runner.delivered_charge_uc == pytest.approx(
            (3.0 * 10_000 + 0.1 * 40_000) * duty, rel=1e-9
        )
        assert runner.delivered_on_time_s == pytest.approx(3.1)
        runner.recorder.close()
    finally:
        driver.close()


class CoarseStepDriver(SimulatedDriver):
    """The simulated device behind a driver that declares a 300 µA amplitude step, as a device
    whose output stage moves in such steps would."""

    def _device_capabilities(self, identity: object) -> DeviceCapabilities:  # type: ignore[override]
        capabilities = super()._device_capabilities(identity)  # type: ignore[arg-type]
        coarse = {
            modality: ModalityCapabilities.model_validate(
                {**ranges.model_dump(), "amplitude_step_ua": 300}
            )
            for modality, ranges in capabilities.modalities.items()
        }
        return capabilities.model_copy(update={"modalities": coarse})


def test_ramp_steps_stay_on_the_device_amplitude_step(engine: Engine, tmp_path: Path) -> None:
    driver = connected(CoarseStepDriver)
    try:
        runner, clock = run(engine, driver, plan(12, ramp_up_s=2.0), tmp_path)
        runner.start()
        for _ in range(4):
            clock.now += 0.2
            level = emulator_of(driver).output_amplitude_ua(0)
            assert wait_until(
                lambda level=level: emulator_of(driver).output_amplitude_ua(0) > level
            )

        assert runner.state is RunState.RUNNING
        sent = [
            entry.message.amplitude_ua
            for entry in emulator_of(driver).command_log
            if entry.command is wire.Command.SET_AMPLITUDE
        ]
        assert sent[:4] == [1200, 2400, 3600, 4800]
        assert all(amplitude % 300 == 0 for amplitude in sent)
        runner.stop()
        runner.recorder.close()
    finally:
        driver.close()
