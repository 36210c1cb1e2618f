"""The session runner: one device, one approved plan, one session, from start to its recorded end.

States: planned → running ⇄ paused → completed | stopped | aborted (interrupted is set at start-up
for sessions whose runner vanished with the process). Ramps and on/off duty cycles are one
mechanism: an envelope in [0, 1] per channel over the session's running time; a control thread moves
each channel's amplitude towards ``target × envelope`` in small steps, every step re-approved by the
limits engine before the driver encodes it. Every state change, parameter change, refusal, warning
acknowledgement, fault and note becomes an append-only event through the recorder. Any driver fault
aborts the session with the reason; electrode off pauses it until the practitioner resumes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sessionlog.hal import (
    DeviceFaultError,
    DeviceFaultReport,
    DeviceStatus,
    Driver,
    HalError,
    TelemetryReading,
)
from sessionlog.safety import (
    AmplitudeRange,
    ApprovedPlan,
    ChannelPlan,
    LimitsEngine,
    Verdict,
    standard_profile,
)
from sessionlog.sessions.recorder import SessionRecorder

logger = logging.getLogger(__name__)

CONTROL_INTERVAL_S = 0.05
MIN_STEP_INTERVAL_S = 0.1


class RunState(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    ABORTED = "aborted"


ENDED = frozenset({RunState.COMPLETED, RunState.STOPPED, RunState.ABORTED})


class SessionStateError(RuntimeError):
    """The action does not fit the session's state (e.g. resume a session that is not paused)."""


def envelope(channel: ChannelPlan, elapsed_s: float, duration_s: float) -> float:
    """The fraction of the target amplitude a channel delivers ``elapsed_s`` into the session.

    Without a duty cycle: a ramp up at the start and a ramp down before the planned end. With one:
    each on period ramps up at its start and down before its end, and the off period is silent.
    """
    if elapsed_s >= duration_s:
        return 0.0
    if channel.on_time_s is not None and channel.off_time_s is not None:
        period = channel.on_time_s + channel.off_time_s
        position = elapsed_s % period
        if position >= channel.on_time_s:
            return 0.0
        start, end = position, channel.on_time_s - position
    else:
        start, end = elapsed_s, duration_s - elapsed_s
    level = 1.0
    if channel.ramp_up_s > 0:
        level = min(level, start / channel.ramp_up_s)
    if channel.ramp_down_s > 0:
        level = min(level, end / channel.ramp_down_s)
    return max(0.0, min(1.0, level))


@dataclass(frozen=True)
class RunnerSnapshot:
    """What a live view shows: state, times and what each channel delivers now."""

    session_id: int
    state: RunState
    elapsed_s: float
    remaining_s: float
    target_ua: dict[int, int]
    output_ua: dict[int, int]
    last_current_ua: dict[int, int]
    last_impedance_ohm: dict[int, int]
    end_reason: str | None


class SessionRunner:
    """Runs one live session on one connected driver; every public method is thread-safe."""

    def __init__(
        self,
        *,
        session_id: int,
        driver: Driver,
        approved: ApprovedPlan,
        recorder: SessionRecorder,
        engine: LimitsEngine,
        on_end: Callable[[SessionRunner], None] | None = None,
        on_state: Callable[[SessionRunner, RunState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_id = session_id
        self.driver = driver
        self.recorder = recorder
        self._engine = engine
        self._on_end = on_end
        self._on_state = on_state
        self._clock = clock
        self._lock = threading.RLock()
        self._state = RunState.PLANNED
        self._approved_target = approved
        self._targets = {c.channel: c.amplitude_ua for c in approved.plan.channels}
        self._output: ApprovedPlan | None = None
        self._last_step_at: dict[int, float] = {}
        self._elapsed_before_s = 0.0
        self._running_since: float | None = None
        self._end_reason: str | None = None
        self._last_current: dict[int, int] = {}
        self._last_impedance: dict[int, int] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._delivered_uc = 0.0
        self._delivered_on_s = 0.0
        self._accounted_at: float | None = None
        """Up to when the delivered charge and on-time are counted (``_account``)."""
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        driver.add_listener(self._on_driver_event)

    # ---------------------------------------------------------------- read side

    @property
    def state(self) -> RunState:
        return self._state

    @property
    def plan(self) -> ApprovedPlan:
        return self._approved_target

    @property
    def end_reason(self) -> str | None:
        return self._end_reason

    @property
    def delivered_charge_uc(self) -> float:
        """The charge the output delivered while running, step by step as it was commanded
        (ramps, duty-cycle off periods, pauses and live changes included): sum of amplitude ×
        duty fraction × time over every channel."""
        with self._lock:
            self._account()
            return self._delivered_uc

    @property
    def delivered_on_time_s(self) -> float:
        """Running time during which some channel had a non-zero output."""
        with self._lock:
            self._account()
            return self._delivered_on_s

    def elapsed_s(self) -> float:
        with self._lock:
            running = (
                self._clock() - self._running_since if self._running_since is not None else 0.0
            )
            return self._elapsed_before_s + running

    def snapshot(self) -> RunnerSnapshot:
        with self._lock:
            elapsed = self.elapsed_s()
            duration = self._approved_target.plan.duration_s
            output = self._output.plan if self._output is not None else None
            return RunnerSnapshot(
                session_id=self.session_id,
                state=self._state,
                elapsed_s=elapsed,
                remaining_s=max(0.0, duration - elapsed),
                target_ua=dict(self._targets),
                # What flows: the output's amplitudes while running, none while paused or after.
                output_ua={
                    c.channel: c.amplitude_ua if self._state is RunState.RUNNING else 0
                    for c in output.channels
                }
                if output
                else {},
                last_current_ua=dict(self._last_current),
                last_impedance_ohm=dict(self._last_impedance),
                end_reason=self._end_reason,
            )

    def intensity_ranges(self) -> dict[int, AmplitudeRange] | None:
        """Per channel, the target amplitudes a change may set now without a refusal or a warning
        to acknowledge (what an intensity control offers), from the limits engine's amplitude
        range of the current target; None once the session has ended, or when the target's
        approval carried a warning (each change is then judged on its own)."""
        if self._state in ENDED:
            return None
        # The target is immutable and replaced whole, so it is read without the lock.
        return self._engine.amplitude_ranges(self._approved_target)

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Be told of state changes and telemetry (for live views); returns the unsubscribe call."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def wait_until_ended(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)

    # ---------------------------------------------------------------- practitioner actions

    def start(self, *, actor_id: int | None = None) -> None:
        with self._lock:
            self._require(RunState.PLANNED, "start")
            zero = self._approved_target
            for channel in zero.plan.channels:
                zero = self._approve_step(zero, channel.channel, self._initial_amplitude(channel))
            try:
                self.driver.apply(zero)
                self.driver.start()
            except HalError as error:
                self._abort(f"could not start: {error}")
                raise
            self._output = zero
            self._running_since = self._clock()
            self._set_state(RunState.RUNNING, actor_id, "started")
        self._thread = threading.Thread(
            target=self._control_loop, name=f"session-{self.session_id}", daemon=True
        )
        self._thread.start()

    def change_intensity(
        self,
        channel: int,
        amplitude_ua: int,
        *,
        actor_id: int | None = None,
        acknowledged_warnings: frozenset[str] = frozenset(),
    ) -> Verdict:
        """Ask for a new target amplitude; it takes effect only if the limits engine approves it."""
        with self._lock:
            if self._state not in (RunState.RUNNING, RunState.PAUSED, RunState.PLANNED):
                raise SessionStateError(f"cannot change intensity of a {self._state} session")
            previous = self._targets.get(channel)
            verdict = self._engine.approve_change(
                self._approved_target,
                channel=channel,
                amplitude_ua=amplitude_ua,
                acknowledged_warnings=acknowledged_warnings,
            )
            payload: dict[str, Any] = {
                "channel": channel,
                "from_ua": previous,
                "to_ua": amplitude_ua,
            }
            if verdict.approved_plan is None:
                self.recorder.event(
                    "intensity_refused",
                    {**payload, "reasons": verdict.reasons},
                    actor_id=actor_id,
                )
                return verdict
            self._approved_target = verdict.approved_plan
            self._targets[channel] = amplitude_ua
            # Who acknowledged what: the codes this request acknowledged are the actor's; those
            # acknowledged earlier in the session (they hold for the whole session) are named
            # apart, each once however many channels raise it.
            raised = {w.code for w in verdict.warnings if w.acknowledged}
            if raised & acknowledged_warnings:
                payload["acknowledged_warnings"] = sorted(raised & acknowledged_warnings)
            if raised - acknowledged_warnings:
                payload["warnings_acknowledged_earlier"] = sorted(raised - acknowledged_warnings)
            self.recorder.event("intensity_changed", payload, actor_id=actor_id)
            self._last_step_at.pop(channel, None)
            self._notify({"type": "intensity", **payload})
            return verdict

    def pause(self, *, actor_id: int | None = None, reason: str = "practitioner") -> None:
        with self._lock:
            self._require(RunState.RUNNING, "pause")
            self._driver_call(self.driver.pause)
            self._elapsed_before_s = self.elapsed_s()
            self._running_since = None
            self._set_state(RunState.PAUSED, actor_id, reason)

    def resume(self, *, actor_id: int | None = None) -> None:
        with self._lock:
            self._require(RunState.PAUSED, "resume")
            if self._electrode_off():
                # The device would refuse the resume (and a refused command faults the driver):
                # say so and stay paused until the electrode is back on.
                raise SessionStateError(
                    "cannot resume: the device reports an electrode still off; reattach it and "
                    "resume again"
                )
            self._driver_call(self.driver.resume)
            self._running_since = self._clock()
            self._set_state(RunState.RUNNING, actor_id, "resumed")

    def stop(
        self, *, actor_id: int | None = None, reason: str = "stopped by the practitioner"
    ) -> None:
        with self._lock:
            if self._state in ENDED:
                raise SessionStateError(f"the session has already ended ({self._state})")
            if self._state is not RunState.PLANNED:
                self._driver_call(self.driver.stop)
            self._end(RunState.STOPPED, reason, actor_id)

    def emergency_stop(
        self, *, actor_id: int | None = None, reason: str = "emergency stop"
    ) -> None:
        """Stop output now, whatever the state; never waits for a command in flight."""
        self.driver.emergency_stop()
        with self._lock:
            if self._state not in ENDED:
                self._end(RunState.STOPPED, reason, actor_id)

    def note(self, text: str, *, actor_id: int | None = None) -> None:
        self.recorder.event("note", {"text": text}, actor_id=actor_id)

    # ---------------------------------------------------------------- internals

    def _electrode_off(self) -> bool:
        """Whether the device says an electrode is still off, for a driver that reads its device's
        status (one that cannot is left to refuse the resume itself)."""
        if not self.driver.can_read_status:
            return False
        status: list[DeviceStatus] = []
        self._driver_call(lambda: status.append(self.driver.read_status()))
        return "electrode_off" in status[0].conditions

    def _require(self, state: RunState, action: str) -> None:
        if self._state is not state:
            raise SessionStateError(f"cannot {action} a {self._state} session")

    def _ramp_grid_ua(self) -> tuple[int, int]:
        """(step, lowest non-zero value) of the amplitudes a ramp passes through: multiples of the
        device's amplitude step, none below the device's minimum or in the band below the standard
        profile's smallest non-zero amplitude (for EMS, below 1 mA)."""
        modality = self.plan.plan.modality
        capabilities = self.driver.capabilities.for_modality(modality)
        step = capabilities.amplitude_step_ua if capabilities else 1
        lowest = capabilities.amplitude_min_ua if capabilities else 0
        minimum = standard_profile(modality).min_nonzero_amplitude_ua
        if minimum is not None:
            lowest = max(lowest, int(minimum.value))
        return step, max(lowest, step)

    def _amplitude_at(self, channel: ChannelPlan, elapsed_s: float) -> int:
        """The amplitude the envelope asks for, on the ramp grid; the target itself is exact."""
        target = self._targets[channel.channel]
        level = envelope(channel, elapsed_s, self.plan.plan.duration_s)
        if level >= 1.0:
            return target
        step, lowest = self._ramp_grid_ua()
        value = min(target, int(target * level) // step * step)
        return value if value >= lowest else 0

    def _initial_amplitude(self, channel: ChannelPlan) -> int:
        return self._amplitude_at(channel, 0.0)

    def _approve_step(self, base: ApprovedPlan, channel: int, amplitude_ua: int) -> ApprovedPlan:
        """Approve one step of the output towards the target. The warnings the practitioner
        acknowledged for the target hold for the steps on the way to it (a step never goes past
        its target), as they do for the output's own earlier steps."""
        verdict = self._engine.approve_change(
            base,
            channel=channel,
            amplitude_ua=amplitude_ua,
            acknowledged_warnings=base.acknowledged_warnings
            | self._approved_target.acknowledged_warnings,
        )
        if verdict.approved_plan is None:
            raise SessionStateError("; ".join(verdict.reasons))
        return verdict.approved_plan

    def _driver_call(self, call: Callable[[], None]) -> None:
        try:
            call()
        except HalError as error:
            self._abort(str(error))
            raise

    def _account(self) -> None:
        """Count what the output delivered since the last count (call under the lock before the
        output or the state changes)."""
        now = self._clock()
        output = self._output
        if (
            self._state is RunState.RUNNING
            and output is not None
            and self._accounted_at is not None
        ):
            span = now - self._accounted_at
            rate_ua = sum(
                channel.amplitude_ua * figures.duty_fraction
                for channel, figures in zip(output.plan.channels, output.dose.channels, strict=True)
            )
            self._delivered_uc += rate_ua * span
            if rate_ua > 0:
                self._delivered_on_s += span
        self._accounted_at = now

    def _set_state(self, state: RunState, actor_id: int | None, reason: str) -> None:
        self._account()
        previous = self._state
        self._state = state
        self.recorder.event(
            "state_changed",
            {"from": previous.value, "to": state.value, "reason": reason},
            actor_id=actor_id,
        )
        self._notify({"type": "state", "state": state.value, "reason": reason})
        if self._on_state is not None and state not in ENDED:
            try:
                self._on_state(self, state)
            except Exception:
                logger.exception("session %s: recording state %s failed", self.session_id, state)

    def _end(self, state: RunState, reason: str, actor_id: int | None) -> None:
        if self._state in ENDED:
            return
        if self._running_since is not None:
            self._elapsed_before_s = self.elapsed_s()
            self._running_since = None
        self._end_reason = reason
        self._set_state(state, actor_id, reason)
        self._done.set()
        # The device may run the next session now: nothing it reports belongs to this one.
        self.driver.remove_listener(self._on_driver_event)
        if self._on_end is not None:
            threading.Thread(target=self._on_end, args=(self,), daemon=True).start()

    def _abort(self, reason: str) -> None:
        with self._lock:
            if self._state in ENDED:
                return
            self.recorder.event("fault", {"reason": reason})
            self._end(RunState.ABORTED, reason, None)

    def _on_driver_event(self, event: TelemetryReading | DeviceFaultReport) -> None:
        if self._state in ENDED:
            return  # one already on its way when the session ended and stopped listening
        if isinstance(event, TelemetryReading):
            self.recorder.telemetry(event)
            self._last_current[event.channel] = event.current_ua
            self._last_impedance[event.channel] = event.impedance_ohm
            self._notify(
                {
                    "type": "telemetry",
                    "channel": event.channel,
                    "current_ua": event.current_ua,
                    "impedance_ohm": event.impedance_ohm,
                }
            )
            return
        if event.stops_output:
            # Runs on the thread reading the driver's port; the driver has already stopped output.
            threading.Thread(target=self._abort, args=(event.reason,), daemon=True).start()
            return
        threading.Thread(target=self._device_paused, args=(event,), daemon=True).start()

    def _device_paused(self, event: DeviceFaultReport) -> None:
        """Electrode off and the like: the device held its output; hold the session until resumed."""
        with self._lock:
            self.recorder.event("device_warning", {"code": event.code, "reason": event.reason})
            if self._state is RunState.RUNNING:
                try:
                    self.pause(reason=event.reason)
                except (HalError, SessionStateError) as error:
                    logger.error(
                        "session %s: pause after %s failed: %s", self.session_id, event.code, error
                    )

    def _notify(self, message: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener({"session_id": self.session_id, **message})
            except Exception:
                logger.exception("a session listener raised; it is removed")
                self._listeners.remove(listener)

    def _control_loop(self) -> None:
        while not self._done.wait(CONTROL_INTERVAL_S):
            try:
                self._control_step()
            except DeviceFaultError as error:
                self._abort(error.reason)
            except Exception as error:
                logger.exception("session %s: control step failed", self.session_id)
                try:
                    self.driver.emergency_stop()
                finally:
                    self._abort(f"control failure: {error}")

    def _control_step(self) -> None:
        with self._lock:
            if self._state is not RunState.RUNNING or self._output is None:
                return
            elapsed = self.elapsed_s()
            duration = self.plan.plan.duration_s
            if elapsed >= duration:
                self.driver.stop()
                self._end(RunState.COMPLETED, "planned duration reached", None)
                return
            now = self._clock()
            for channel in self.plan.plan.channels:
                number = channel.channel
                wanted = self._amplitude_at(channel, elapsed)
                current = self._output.plan.channel(number).amplitude_ua
                if wanted == current:
                    continue
                if now - self._last_step_at.get(number, 0.0) < MIN_STEP_INTERVAL_S and wanted != 0:
                    continue
                step = self._approve_step(self._output, number, wanted)
                self.driver.set_amplitude(step, number)
                self._account()
                self._output = step
                self._last_step_at[number] = now
