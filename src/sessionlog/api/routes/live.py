"""Live sessions over HTTP: connect devices, create a session from a plan, run it, watch it.

The routes are thin: the limits engine decides, ``LiveSessions`` and its runners act, the recorder
writes. A refused plan or intensity step is a 422 problem whose ``errors`` name each violated field
and whose ``verdict`` member carries the full verdict; state conflicts (resume a running session) are
409 problems. The live stream is Server-Sent Events of state changes and telemetry.

The creating POSTs (connect, create a session, add a live note) accept ``Idempotency-Key`` like
every other: a retry with the same key and body gets the first answer and acts no second time. The
work itself is done by ``LiveSessions`` in transactions of its own, so the request's transaction,
in which the key is looked up, ends before it (on SQLite it holds the write lock those would wait
for), and the answer is stored after it. Unlike a record's create, the answer is therefore not
stored atomically with what it reports: of two requests with the same key sent at the same moment,
both may act (the second then answers 409 naming the header); a retry after an answer, or after a
lost one, is safe.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Security, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, model_validator

from sessionlog.api import device_urls
from sessionlog.api.auth import AuditorDep, authorize
from sessionlog.api.deps import PathId, SessionDep
from sessionlog.api.idempotency import Idempotency, IdempotencyDep
from sessionlog.api.problems import (
    PROBLEM_RESPONSES,
    SITE_POLICY_RESPONSES,
    FieldError,
    ProblemError,
    problem_response,
)
from sessionlog.api.query import StrictQuery
from sessionlog.api.routes.crud import fetch
from sessionlog.api.routes.limits import verdict_public
from sessionlog.errors import RecordNotFoundError
from sessionlog.fields import Code, LongText, RecordId, ShortText
from sessionlog.hal import HalError
from sessionlog.safety import ContraindicationOverride, StimulationPlan, Verdict, WarningCode
from sessionlog.safety.plan import current_to_ua
from sessionlog.schemas import (
    AmplitudeRangePublic,
    DevicePublic,
    VerdictPublic,
    amplitude_ranges_public,
)
from sessionlog.security.principal import Principal
from sessionlog.security.scopes import Scope
from sessionlog.sessions import telemetry as telemetry_store
from sessionlog.sessions.live import (
    EmergencyStopNotDeliveredError,
    LiveSessions,
    PlanRefusedError,
)
from sessionlog.sessions.runner import SessionRunner, SessionStateError
from sessionlog.store.models import Device, TreatmentSession

router = APIRouter(tags=["live sessions"], responses=PROBLEM_RESPONSES)
Runner = Annotated[Principal, Security(authorize, scopes=[Scope.SESSIONS_RUN])]
Connector = Annotated[Principal, Security(authorize, scopes=[Scope.DEVICES_CONNECT])]
DeviceReader = Annotated[Principal, Security(authorize, scopes=[Scope.DEVICES_READ])]
SessionReader = Annotated[Principal, Security(authorize, scopes=[Scope.SESSIONS_READ])]


def live_sessions(request: Request) -> LiveSessions:
    sessions: LiveSessions = request.app.state.live_sessions
    return sessions


# ---------------------------------------------------------------------------- models


class ConnectRequest(BaseModel):
    model_config = {"extra": "forbid"}

    driver: Code = Field(examples=["simulated"])
    url: ShortText = Field(
        examples=["sim://?channels=2", "/dev/ttyUSB0", "socket://127.0.0.1:7000"]
    )


class ConnectionPublic(BaseModel):
    device: DevicePublic
    url: str
    state: str
    fault_reason: str | None


class LiveSessionCreate(BaseModel):
    model_config = {"extra": "forbid"}

    client_id: RecordId
    practitioner_id: RecordId
    device_id: RecordId
    program_id: RecordId | None = None
    plan: StimulationPlan
    overrides: list[ContraindicationOverride] = Field(default_factory=list, max_length=20)
    acknowledged_warnings: list[WarningCode] = Field(default_factory=list, max_length=20)


class LiveStatus(BaseModel):
    session_id: int
    state: str
    elapsed_s: float
    remaining_s: float
    target_ua: dict[int, int]
    output_ua: dict[int, int]
    last_current_ua: dict[int, int]
    last_impedance_ohm: dict[int, int]
    end_reason: str | None
    device_state: str
    intensity_ranges: dict[int, AmplitudeRangePublic] | None = Field(
        default=None,
        description="Per channel, what an intensity change may set now without a refusal or a "
        "warning; null once the session has ended or when its plan carried an acknowledged "
        "warning (each change is then judged on its own)",
    )


class LiveSessionCreated(BaseModel):
    session_id: int
    verdict: VerdictPublic
    status: LiveStatus


class IntensityChange(BaseModel):
    """A new target amplitude for one channel; the unit is explicit, as everywhere."""

    model_config = {"extra": "forbid"}

    channel: int = Field(ge=1, le=64)
    amplitude_ua: int = Field(ge=0, le=1_000_000, description="Or give amplitude_ma instead.")
    acknowledged_warnings: list[WarningCode] = Field(default_factory=list, max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _explicit_unit(cls, data: Any) -> Any:
        return current_to_ua(data, "amplitude") if isinstance(data, dict) else data


class LiveNote(BaseModel):
    model_config = {"extra": "forbid"}

    text: LongText = Field(min_length=1)


class TelemetrySeries(BaseModel):
    channel: int
    t_s: list[float] = Field(description="Seconds since the first sample of the session")
    current_ua: list[float]
    impedance_ohm: list[float]
    samples: int = Field(description="Samples stored before downsampling")


# ---------------------------------------------------------------------------- helpers


def _status(runner: SessionRunner) -> LiveStatus:
    snapshot = runner.snapshot()
    return LiveStatus(
        session_id=snapshot.session_id,
        state=snapshot.state.value,
        elapsed_s=round(snapshot.elapsed_s, 3),
        remaining_s=round(snapshot.remaining_s, 3),
        target_ua=snapshot.target_ua,
        output_ua=snapshot.output_ua,
        last_current_ua=snapshot.last_current_ua,
        last_impedance_ohm=snapshot.last_impedance_ohm,
        end_reason=snapshot.end_reason,
        device_state=runner.driver.state.value,
        intensity_ranges=amplitude_ranges_public(runner.intensity_ranges()),
    )


def _refused(request: Request, verdict: Verdict, title: str) -> JSONResponse:
    errors = [
        FieldError(field=f"plan.{v.field}", reason=v.message, location="body")
        for v in verdict.violations
    ]
    errors += [
        FieldError(
            field=f"plan.{w.field}", reason=f"{w.message} (acknowledge {w.code})", location="body"
        )
        for w in verdict.warnings
        if not w.acknowledged
    ]
    response = problem_response(
        request, 422, title, detail="; ".join(verdict.reasons), kind="plan-refused", errors=errors
    )
    body = json.loads(bytes(response.body))
    body["verdict"] = verdict_public(verdict).model_dump(mode="json")
    return JSONResponse(body, status_code=422, media_type=response.media_type)


def _replay_or_release(idempotency: Idempotency, data: BaseModel) -> JSONResponse | None:
    """The first answer to this request's Idempotency-Key, if there is one; otherwise the
    request's transaction, which looked the key up, is ended before the live work begins."""
    replayed = idempotency.replay(data)
    if replayed is None and idempotency.key is not None:
        idempotency.db.commit()
    return replayed


def _conflict(request: Request, error: Exception) -> JSONResponse:
    return problem_response(
        request, 409, "Not possible in the session's state", detail=str(error), kind="state"
    )


def _device_fault(request: Request, error: HalError) -> JSONResponse:
    return problem_response(
        request, 409, "Device fault: output stopped", detail=str(error), kind="device-fault"
    )


# ---------------------------------------------------------------------------- devices


@router.post("/connections", status_code=status.HTTP_201_CREATED, response_model=ConnectionPublic)
def connect_device(
    data: ConnectRequest,
    request: Request,
    db: SessionDep,
    _: Connector,
    audit: AuditorDep,
    idempotency: IdempotencyDep,
) -> Any:
    """Open a device with a driver; its record is created or refreshed from what it reports."""
    replayed = _replay_or_release(idempotency, data)
    if replayed is not None:
        return replayed
    settings = request.app.state.settings
    refused = device_urls.refusal(data.url, settings.device_hosts, settings.device_paths)
    if refused is not None:
        return problem_response(
            request,
            422,
            "Device could not be connected",
            detail=f"url: {refused}",
            kind="validation",
            errors=[FieldError(field="url", reason=refused, location="body")],
        )
    try:
        device, connection = live_sessions(request).connect(data.driver, data.url)
    except HalError as error:
        return problem_response(
            request,
            422,
            "Device could not be connected",
            detail=str(error),
            kind="device-connect",
            errors=[FieldError(field="url", reason=str(error), location="body")],
        )
    audit.record(
        "connect", "device", device.id, after={"url": connection.url, "driver": data.driver}
    )
    result = ConnectionPublic(
        device=DevicePublic.model_validate(device),
        url=connection.url,
        state=connection.driver.state.value,
        fault_reason=connection.driver.fault_reason,
    )
    idempotency.remember(data, status.HTTP_201_CREATED, result, {})
    return result


@router.get("/connections", response_model=list[ConnectionPublic])
def list_connections(
    request: Request, db: SessionDep, _: DeviceReader, _query: StrictQuery
) -> list[ConnectionPublic]:
    return [
        ConnectionPublic(
            device=DevicePublic.model_validate(fetch(db, Device, "device", c.device_id)),
            url=c.url,
            state=c.driver.state.value,
            fault_reason=c.driver.fault_reason,
        )
        for c in live_sessions(request).connections()
    ]


@router.delete("/connections/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
def disconnect_device(device_id: PathId, request: Request, _: Connector, audit: AuditorDep) -> None:
    live_sessions(request).disconnect(device_id)
    audit.record("disconnect", "device", device_id)


# ---------------------------------------------------------------------------- sessions


@router.post(
    "/sessions/live",
    status_code=status.HTTP_201_CREATED,
    response_model=LiveSessionCreated,
    responses=SITE_POLICY_RESPONSES,
)
def create_live_session(
    data: LiveSessionCreate,
    request: Request,
    principal: Runner,
    audit: AuditorDep,
    idempotency: IdempotencyDep,
) -> Any:
    """Approve a plan against every layer for a connected device and create the planned session.

    A refusal is a 422 problem whose `errors` name each violated field and whose `verdict` member
    carries the verdict; warnings must be listed in `acknowledged_warnings` to be accepted.
    """
    replayed = _replay_or_release(idempotency, data)
    if replayed is not None:
        return replayed
    manager = live_sessions(request)
    try:
        session_id, verdict = manager.create(
            client_id=data.client_id,
            practitioner_id=data.practitioner_id,
            device_id=data.device_id,
            program_id=data.program_id,
            plan=data.plan,
            overrides=data.overrides,
            acknowledged_warnings=frozenset(data.acknowledged_warnings),
            actor_id=principal.user_id,
        )
    except PlanRefusedError as refused:
        return _refused(request, refused.verdict, "Plan refused by the limits engine")
    audit.record(
        "create",
        "session",
        session_id,
        after={"mode": "live", "device_id": data.device_id, "client_id": data.client_id},
    )
    result = LiveSessionCreated(
        session_id=session_id,
        verdict=verdict_public(verdict),
        status=_status(manager.runner(session_id)),
    )
    idempotency.remember(data, status.HTTP_201_CREATED, result, {})
    return result


@router.get("/sessions/{session_id}/live", response_model=LiveStatus)
def live_status(
    session_id: PathId, request: Request, _: SessionReader, _query: StrictQuery
) -> LiveStatus:
    return _status(live_sessions(request).runner(session_id))


def _act(request: Request, principal: Principal, session_id: int, action: str) -> Any:
    runner = live_sessions(request).runner(session_id)
    try:
        getattr(runner, action)(actor_id=principal.user_id)
    except SessionStateError as error:
        return _conflict(request, error)
    except HalError as error:
        return _device_fault(request, error)
    return _status(runner)


@router.post("/sessions/{session_id}/start", response_model=LiveStatus)
def start_session(session_id: PathId, request: Request, principal: Runner) -> Any:
    return _act(request, principal, session_id, "start")


@router.post("/sessions/{session_id}/pause", response_model=LiveStatus)
def pause_session(session_id: PathId, request: Request, principal: Runner) -> Any:
    return _act(request, principal, session_id, "pause")


@router.post("/sessions/{session_id}/resume", response_model=LiveStatus)
def resume_session(session_id: PathId, request: Request, principal: Runner) -> Any:
    return _act(request, principal, session_id, "resume")


@router.post("/sessions/{session_id}/stop", response_model=LiveStatus)
def stop_session(session_id: PathId, request: Request, principal: Runner) -> Any:
    return _act(request, principal, session_id, "stop")


@router.post("/sessions/{session_id}/emergency-stop", response_model=LiveStatus)
def emergency_stop_session(session_id: PathId, request: Request, principal: Runner) -> Any:
    """Stop output at once; this never waits for a command in flight. On a session that has
    ended, it stops (and ends) the session now running on its device, over whichever connection;
    with no session running there, it stops the device's output all the same. A 409
    (`device-not-connected`) says that the session's device is not connected, so no stop was
    sent: use the device's own stop."""
    try:
        runner = live_sessions(request).emergency_stop(session_id, actor_id=principal.user_id)
    except EmergencyStopNotDeliveredError as error:
        raise ProblemError(
            409,
            "Emergency stop not delivered: the device is not connected",
            detail=f"{error}: no stop was sent. This service drives no output on a device it is "
            "not connected to; if the device is stimulating, use its own stop.",
            kind="device-not-connected",
            errors=[FieldError(field="session_id", reason=str(error), location="path")],
        ) from error
    return _status(runner)


@router.post("/sessions/{session_id}/intensity", response_model=LiveStatus)
def change_intensity(
    session_id: PathId, data: IntensityChange, request: Request, principal: Runner
) -> Any:
    """Re-approve and apply a new target amplitude for one channel (ramping towards it)."""
    runner = live_sessions(request).runner(session_id)
    try:
        verdict = runner.change_intensity(
            data.channel,
            data.amplitude_ua,
            actor_id=principal.user_id,
            acknowledged_warnings=frozenset(data.acknowledged_warnings),
        )
    except SessionStateError as error:
        return _conflict(request, error)
    except ValueError as error:
        return problem_response(
            request,
            422,
            "Request validation failed",
            detail=str(error),
            kind="validation",
            errors=[FieldError(field="channel", reason=str(error), location="body")],
        )
    if verdict.approved_plan is None:
        return _refused(request, verdict, "Intensity change refused by the limits engine")
    return _status(runner)


@router.post(
    "/sessions/{session_id}/live-notes",
    status_code=status.HTTP_201_CREATED,
    response_model=LiveStatus,
)
def live_note(
    session_id: PathId,
    data: LiveNote,
    request: Request,
    principal: Runner,
    idempotency: IdempotencyDep,
) -> Any:
    replayed = _replay_or_release(idempotency, data)
    if replayed is not None:
        return replayed
    runner = live_sessions(request).runner(session_id)
    runner.note(data.text, actor_id=principal.user_id)
    result = _status(runner)
    idempotency.remember(data, status.HTTP_201_CREATED, result, {})
    return result


@router.get("/sessions/{session_id}/stream")
async def stream_session(
    session_id: PathId, request: Request, _: SessionReader, _query: StrictQuery
) -> StreamingResponse:
    """Server-Sent Events: `state`, `telemetry` and `intensity` messages, and a `status` each second."""
    runner = live_sessions(request).runner(session_id)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

    def deliver(message: dict[str, Any]) -> None:
        def put() -> None:
            if not queue.full():
                queue.put_nowait(message)

        loop.call_soon_threadsafe(put)

    unsubscribe = runner.subscribe(deliver)

    async def events() -> AsyncIterator[str]:
        try:
            yield f"event: status\ndata: {_status(runner).model_dump_json()}\n\n"
            while True:
                if await request.is_disconnected():
                    return
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=1.0)
                except TimeoutError:
                    status_now = _status(runner)
                    yield f"event: status\ndata: {status_now.model_dump_json()}\n\n"
                    if status_now.state in ("completed", "stopped", "aborted"):
                        return
                    continue
                yield f"event: {message['type']}\ndata: {json.dumps(message)}\n\n"
        finally:
            unsubscribe()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.get("/sessions/{session_id}/telemetry", response_model=list[TelemetrySeries])
def session_telemetry(
    session_id: PathId,
    db: SessionDep,
    _: SessionReader,
    _query: StrictQuery,
    audit: AuditorDep,
    max_points: Annotated[
        int, Query(ge=2, le=100_000, description="Per channel, after downsampling")
    ] = 1000,
) -> list[TelemetrySeries]:
    """The stored telemetry of a session as arrays per channel, averaged into at most `max_points`."""
    if db.get(TreatmentSession, session_id) is None:
        raise RecordNotFoundError("session", session_id)
    audit.record("read", "telemetry", session_id)
    return [
        TelemetrySeries(**series)
        for series in telemetry_store.series(db, session_id, max_points=max_points)
    ]
