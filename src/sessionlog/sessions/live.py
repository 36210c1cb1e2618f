"""Live sessions in one service: connected devices, their runners, and what survives a restart.

``LiveSessions`` is the one owner of every open driver and every running session in the process, so
several devices can run sessions at once and shutting the service down stops every output first. At
start-up, sessions that a previous process left planned, running or paused are marked interrupted
(their events and telemetry up to the last flush are kept, and anything still in the spool is
written), because no runner survives its process and the device's own watchdog has stopped it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from sessionlog.errors import ConflictError, InvalidFieldError, RecordNotFoundError
from sessionlog.hal import Driver, DriverState, HalError, open_device
from sessionlog.safety import ContraindicationOverride, StimulationPlan, Verdict
from sessionlog.sessions.approval import ENGINE, client_context, site_policy
from sessionlog.sessions.practitioners import require_practitioner
from sessionlog.sessions.recorder import SessionRecorder
from sessionlog.sessions.runner import ENDED, RunState, SessionRunner
from sessionlog.sessions.telemetry import delivered_from_telemetry, last_recorded_at
from sessionlog.settings import Settings
from sessionlog.store import repository
from sessionlog.store.database import read_only, session_scope
from sessionlog.store.models import Client, Device, Program, SessionChannel, TreatmentSession

logger = logging.getLogger(__name__)

UNFINISHED = ("planned", "running", "paused")


class EmergencyStopNotDeliveredError(Exception):
    """An emergency stop pressed on an ended session whose device is not connected: no stop was
    sent anywhere, and the answer must not read as if one had been."""

    def __init__(self, session_id: int, device_id: int) -> None:
        super().__init__(
            f"session {session_id} has ended and its device {device_id} is not connected"
        )
        self.session_id = session_id
        self.device_id = device_id


class PlanRefusedError(Exception):
    """The limits engine refused the plan; the verdict says why."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__("; ".join(verdict.reasons))
        self.verdict = verdict


@dataclass(frozen=True)
class Connection:
    device_id: int
    url: str
    driver: Driver


class LiveSessions:
    """Owns the connected drivers and running sessions of this process."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._lock = threading.Lock()
        self._connections: dict[int, Connection] = {}
        self._runners: dict[int, SessionRunner] = {}
        self._runner_devices: dict[int, int] = {}
        """Each session's device, by its id in the database. A device that is reconnected gets a
        new driver, so a runner's driver does not say which sessions share its device."""
        self._reserved_devices: set[int] = set()
        """Devices a session is being planned on (the check and the registration are apart)."""
        self.spool_dir = Path(settings.data_dir) / "spool"

    # ------------------------------------------------------------------ devices

    def connect(self, driver_name: str, url: str) -> tuple[Device, Connection]:
        """Open and identify a device; its record is created or refreshed from what it reports."""
        with self._lock:
            for connection in self._connections.values():
                if connection.url == url and connection.driver.state is not DriverState.CLOSED:
                    raise ConflictError(
                        "url", f"{url} is already connected as device {connection.device_id}"
                    )
        driver = open_device(url, driver=driver_name)
        identity = driver.identity
        try:
            with session_scope(self._engine) as db:
                device = db.exec(
                    select(Device).where(
                        Device.driver == driver_name, Device.serial_number == identity.serial_number
                    )
                ).first()
                values: dict[str, Any] = {
                    "model": identity.model,
                    "firmware_version": identity.firmware_version,
                    "capabilities": driver.capabilities.model_dump(mode="json"),
                }
                if device is None:
                    device = repository.add(
                        db,
                        Device(driver=driver_name, serial_number=identity.serial_number, **values),
                    )
                else:
                    device = repository.update_versioned(db, device, values)
        except BaseException:
            driver.close()
            raise
        assert device.id is not None
        connection = Connection(device_id=device.id, url=url, driver=driver)
        with self._lock:
            previous = self._connections.get(device.id)
            if previous is not None and previous.driver.state is not DriverState.CLOSED:
                driver.close()
                raise ConflictError(
                    "url", f"device {device.id} is already connected on {previous.url}"
                )
            self._connections[device.id] = connection
        return device, connection

    def connections(self) -> list[Connection]:
        with self._lock:
            return list(self._connections.values())

    def connection(self, device_id: int) -> Connection:
        with self._lock:
            found = self._connections.get(device_id)
        if found is None or found.driver.state is DriverState.CLOSED:
            raise InvalidFieldError("device_id", f"device {device_id} is not connected")
        return found

    def disconnect(self, device_id: int) -> None:
        with self._lock:
            busy = self._open_runner_on(device_id)
            if busy is not None:
                raise ConflictError(
                    "device_id", f"device {device_id} is running session {busy.session_id}"
                )
            connection = self._connections.pop(device_id, None)
        if connection is None:
            raise RecordNotFoundError("connection", device_id)
        connection.driver.close()

    # ------------------------------------------------------------------ sessions

    def create(
        self,
        *,
        client_id: int,
        practitioner_id: int,
        device_id: int,
        plan: StimulationPlan,
        program_id: int | None = None,
        overrides: Sequence[ContraindicationOverride] = (),
        acknowledged_warnings: frozenset[str] = frozenset(),
        actor_id: int | None = None,
    ) -> tuple[int, Verdict]:
        """Approve the plan against every layer and, if approved, create the planned session.

        ``actor_id`` is who asked (the signed-in user); it defaults to the practitioner."""
        connection = self.connection(device_id)
        with self._lock:
            # One open session per device: a second one would move the same output stage, and
            # either's stop or emergency stop would end the other's output behind its back.
            if device_id in self._reserved_devices or self._open_runner_on(device_id):
                raise ConflictError(
                    "device_id",
                    f"device {device_id} has an open session; end it before planning another",
                )
            self._reserved_devices.add(device_id)
        try:
            return self._create(
                connection,
                client_id=client_id,
                practitioner_id=practitioner_id,
                device_id=device_id,
                plan=plan,
                program_id=program_id,
                overrides=overrides,
                acknowledged_warnings=acknowledged_warnings,
                actor_id=actor_id,
            )
        finally:
            with self._lock:
                self._reserved_devices.discard(device_id)

    def _open_runner_on(self, device_id: int) -> SessionRunner | None:
        """The session not yet ended on the device, whichever connection it runs on (called under
        the lock)."""
        return next(
            (
                runner
                for session_id, runner in self._runners.items()
                if self._runner_devices[session_id] == device_id and runner.state not in ENDED
            ),
            None,
        )

    def emergency_stop(self, session_id: int, *, actor_id: int | None = None) -> SessionRunner:
        """Stop output at once. Pressed on a session that has ended, it stops the session that
        now runs on its device, even over a new connection, and that session records it: an
        emergency stop is never a no-op while output may flow, nor a stop that a running session
        does not know of. With no session running there, the stop still goes to the device's
        connection; with no connection, ``EmergencyStopNotDeliveredError`` says that nothing
        was stopped.

        The device is found in memory, not in the database: a stop must not wait for, or depend
        on, a database that may be unreachable."""
        runner = self.runner(session_id)
        with self._lock:
            device_id = self._runner_devices[session_id]
            owner = self._open_runner_on(device_id)
            connection = self._connections.get(device_id)
        if owner is runner:
            runner.emergency_stop(actor_id=actor_id)
        elif owner is not None:
            owner.emergency_stop(
                actor_id=actor_id,
                reason=f"emergency stop (pressed on ended session {session_id})",
            )
        elif connection is not None and connection.driver.state is not DriverState.CLOSED:
            connection.driver.emergency_stop()
        else:
            raise EmergencyStopNotDeliveredError(session_id, device_id)
        return runner

    def _create(
        self,
        connection: Connection,
        *,
        client_id: int,
        practitioner_id: int,
        device_id: int,
        plan: StimulationPlan,
        program_id: int | None,
        overrides: Sequence[ContraindicationOverride],
        acknowledged_warnings: frozenset[str],
        actor_id: int | None,
    ) -> tuple[int, Verdict]:
        with session_scope(self._engine) as db:
            client = repository.get(db, Client, client_id)
            if client is None:
                raise InvalidFieldError("client_id", f"no client with id {client_id}")
            require_practitioner(db, practitioner_id)
            program = repository.get(db, Program, program_id) if program_id else None
            if program_id is not None and program is None:
                raise InvalidFieldError("program_id", f"no program with id {program_id}")
            verdict = ENGINE.approve(
                plan,
                capabilities=connection.driver.capabilities,
                site_policy=site_policy(self._settings),
                client=client_context(client, overrides),
                acknowledged_warnings=acknowledged_warnings,
            )
            approved = verdict.approved_plan
            if approved is None:
                raise PlanRefusedError(verdict)
            dose = verdict.dose
            session = repository.add(
                db,
                TreatmentSession(
                    client_id=client_id,
                    practitioner_id=practitioner_id,
                    device_id=device_id,
                    program_id=program_id,
                    program_name=plan.program_name or (program.name if program else None),
                    mode="live",
                    status="planned",
                    modality=plan.modality,
                    body_site=plan.electrode.body_site,
                    side=plan.electrode.side,
                    electrode_area_cm2=plan.electrode.area_cm2,
                    planned_duration_s=plan.duration_s,
                    dose_max_current_density_ma_cm2=dose.max_current_density_ma_per_cm2,
                    dose_max_power_density_w_cm2=dose.max_power_density_w_per_cm2,
                ),
            )
            assert session.id is not None
            for channel in plan.channels:
                db.add(SessionChannel(session_id=session.id, **channel.model_dump()))
        recorder = SessionRecorder(self._engine, session.id, spool_dir=self.spool_dir)
        recorder.event(
            "approved",
            {
                "layers": list(verdict.layers),
                "acknowledged_warnings": sorted(approved.acknowledged_warnings),
                "overrides": [o.model_dump(mode="json") for o in verdict.overrides_applied],
                "device": {
                    "url": connection.url,
                    "serial_number": connection.driver.identity.serial_number,
                },
            },
            actor_id=actor_id if actor_id is not None else practitioner_id,
        )
        runner = SessionRunner(
            session_id=session.id,
            driver=connection.driver,
            approved=approved,
            recorder=recorder,
            engine=ENGINE,
            on_end=self._finish,
            on_state=self._record_state,
        )
        with self._lock:
            self._runners[session.id] = runner
            self._runner_devices[session.id] = device_id
        return session.id, verdict

    def runner(self, session_id: int) -> SessionRunner:
        with self._lock:
            found = self._runners.get(session_id)
        if found is None:
            raise RecordNotFoundError("live session", session_id)
        return found

    def _record_state(self, runner: SessionRunner, state: RunState) -> None:
        values: dict[str, Any] = {"status": state.value}
        if state is RunState.RUNNING:
            values["started_at"] = datetime.now(UTC)  # kept only if it is the first start
        runner.recorder.update_session(values)

    def _finish(self, runner: SessionRunner) -> None:
        """Write how the session ended, its link error counts and the dose it delivered (counted
        by the runner as the output was commanded, step by step).

        The end goes through the recorder with the last events, so a database outage at that
        moment spools it too instead of losing it.
        """
        counters = runner.driver.counters
        ended_at = datetime.now(UTC)
        runner.recorder.update_session(
            {
                "status": runner.state.value,
                "ended_at": ended_at,
                "started_at": ended_at,  # only if it never started
                "end_reason": runner.end_reason,
                "link_errors": {
                    "malformed_frames": counters.malformed_frames,
                    "reply_timeouts": counters.reply_timeouts,
                    "refusals": counters.refusals,
                    "unmatched_replies": counters.unmatched_replies,
                    "retried_requests": counters.retried_requests,
                    "telemetry_readings": counters.telemetry_readings,
                },
                "dose_total_charge_uc": runner.delivered_charge_uc,
                "dose_on_time_s": runner.delivered_on_time_s,
            },
            flush=False,
        )
        runner.recorder.close()

    # ------------------------------------------------------------------ process lifecycle

    def recover_interrupted(self) -> list[int]:
        """Settle the sessions a previous process left open.

        Each one's spool is written first: it may hold how the session really ended (a database
        outage at the end, then the process stopped). Those still open after that are marked
        interrupted, with their events and telemetry up to the last flush, and end at their last
        record (``last_recorded_at``) rather than when they were found.
        """
        open_sessions = read_only(self._engine)
        with session_scope(open_sessions) as db:
            stale = list(
                db.exec(
                    select(TreatmentSession.id).where(
                        TreatmentSession.mode == "live",
                        col(TreatmentSession.status).in_(UNFINISHED),
                    )
                ).all()
            )
        recovered = []
        for session_id in stale:
            assert session_id is not None
            recorder = SessionRecorder(self._engine, session_id, spool_dir=self.spool_dir)
            try:
                recorder.flush()
                with session_scope(open_sessions) as db:
                    status = db.exec(
                        select(TreatmentSession.status).where(TreatmentSession.id == session_id)
                    ).one()
                if status not in UNFINISHED:
                    continue
                with session_scope(open_sessions) as db:
                    last_record = last_recorded_at(db, session_id)
                    delivered = delivered_from_telemetry(db, session_id)
                found = datetime.now(UTC)
                recorder.event(
                    "state_changed",
                    {"from": "unknown", "to": "interrupted", "reason": "service restart"},
                    flush=False,
                )
                recorder.update_session(
                    {
                        "status": "interrupted",
                        # The last moment the session is known to have lasted: the device's
                        # watchdog ended any output soon after, and the time the service was
                        # down is not part of the session (nor of its duration in analytics).
                        "ended_at": last_record or found,
                        "end_reason": f"the service stopped while the session was {status}; "
                        f"found at the next start ({found.isoformat(timespec='seconds')}); "
                        "it ends at its last record",
                        **(
                            {"dose_total_charge_uc": delivered[0], "dose_on_time_s": delivered[1]}
                            if delivered is not None
                            else {}
                        ),
                    }
                )
                recovered.append(session_id)
            finally:
                recorder.close()
        if recovered:
            logger.warning("sessions marked interrupted at start-up: %s", recovered)
        return recovered

    def shutdown(self) -> None:
        """Stop every output and close every device: nothing keeps stimulating without a host."""
        with self._lock:
            runners = list(self._runners.values())
            connections = list(self._connections.values())
            self._connections.clear()
        for runner in runners:
            if runner.state not in ENDED:
                try:
                    runner.emergency_stop()
                except HalError as error:
                    logger.error(
                        "session %s: stop at shutdown failed: %s", runner.session_id, error
                    )
                runner.wait_until_ended(2)
            runner.recorder.close()
        for connection in connections:
            connection.driver.close()
