"""The page routes: sign in, today, clients, new session, live session, session record, overview.

Thin like the API routes: each page authorises through ``page_user`` (that is, ``authorize`` and the
scopes the matching API routes need), reads through the same store and session helpers as the API,
audits every access to client data with ``AuditorDep`` in the request's transaction, and renders a
template. Everything that changes state (connect, approve and run a session, intensity, stop, notes,
corrections) is done by the page's JavaScript through the JSON API, so the limits engine and the
audit trail see exactly the requests a program would send.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlmodel import col

from sessionlog.analytics.filters import SessionFilter
from sessionlog.analytics.queries import parse_sort, session_page
from sessionlog.api.auth import AuditorDep
from sessionlog.api.deps import PathId, SessionDep
from sessionlog.api.problems import ProblemError
from sessionlog.api.routes.auth import sign_in
from sessionlog.api.routes.crud import fetch
from sessionlog.fields import SearchText
from sessionlog.safety.plan import BodySite, Modality, PhaseType, Side, Waveform
from sessionlog.safety.verdict import WarningCode
from sessionlog.schemas import ClientPublic, ProgramPublic, SessionPublic
from sessionlog.security.principal import Principal
from sessionlog.security.scopes import Scope
from sessionlog.security.tokens import TOKEN_LIFETIME, issue_token
from sessionlog.sessions import records
from sessionlog.sessions.live import LiveSessions
from sessionlog.store import repository
from sessionlog.store.models import Client, Device, Program, TreatmentSession
from sessionlog.web.security import (
    SameOrigin,
    clear_session_cookie,
    page_user,
    safe_next,
    set_session_cookie,
)
from sessionlog.web.templating import templates

router = APIRouter(include_in_schema=False)

Anyone = Annotated[Principal, Depends(page_user())]
DeviceViewer = Annotated[Principal, Depends(page_user(Scope.DEVICES_READ))]
ClientReader = Annotated[Principal, Depends(page_user(Scope.CLIENTS_READ, Scope.SESSIONS_READ))]
SessionRunner = Annotated[
    Principal,
    Depends(page_user(Scope.SESSIONS_RUN, Scope.CLIENTS_READ, Scope.LIMITS_CHECK)),
]
SessionReader = Annotated[Principal, Depends(page_user(Scope.SESSIONS_READ))]
Analyst = Annotated[Principal, Depends(page_user(Scope.ANALYTICS_READ))]

ACTIVE_STATUSES = ["planned", "running", "paused"]
ENDED_STATUSES = ["completed", "stopped", "aborted", "interrupted"]
NEWEST_FIRST = parse_sort("-id")
LIST_LIMIT = 25


def _page(request: Request, name: str, principal: Principal | None, **context: Any) -> Response:
    return templates.TemplateResponse(
        request, name, {"principal": principal, "scope": Scope, **context}
    )


def _landing(scopes: frozenset[Scope]) -> str:
    """Analysts start at the overview; everyone else at today's devices and sessions."""
    if Scope.ANALYTICS_READ in scopes and Scope.SESSIONS_RUN not in scopes:
        return "/app/overview"
    return "/app/"


def _sessions(db: SessionDep, statuses: list[str], **filters: Any) -> list[TreatmentSession]:
    chosen = SessionFilter.model_validate({"status": statuses, **filters})
    return session_page(db, chosen, sort=NEWEST_FIRST, cursor=None, limit=LIST_LIMIT).items


def _client_codes(db: SessionDep, sessions: list[TreatmentSession]) -> dict[int, str]:
    codes: dict[int, str] = {}
    for session in sessions:
        if session.client_id not in codes:
            client = db.get(Client, session.client_id)
            codes[session.client_id] = client.code if client else "?"
    return codes


def _session_read(db: SessionDep, audit: AuditorDep, session_id: int) -> tuple[SessionPublic, str]:
    """One session as its document and its client's code; the read is audited."""
    session = fetch(db, TreatmentSession, "session", session_id)
    public = records.to_public(db, session)
    audit.record("read", "session", session_id)
    return public, _client_codes(db, [session])[session.client_id]


def _audit_sessions(audit: AuditorDep, sessions: list[TreatmentSession]) -> None:
    if sessions:
        audit.record("read", "session", after={"ids": [s.id for s in sessions]})


# ---------------------------------------------------------------------------- signing in


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/app/sign-in", response_class=HTMLResponse)
def sign_in_page(
    request: Request, next_path: Annotated[str | None, Query(alias="next", max_length=400)] = None
) -> Response:
    return _page(request, "sign_in.html", None, next_path=safe_next(next_path), error=None)


@router.post("/app/sign-in", response_class=HTMLResponse, dependencies=[SameOrigin])
def sign_in_submit(
    request: Request,
    db: SessionDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next_path: Annotated[str | None, Form(alias="next", max_length=400)] = None,
) -> Response:
    """Sign in through the API's own credential check (rate limit, audit, role scopes included)."""
    form = OAuth2PasswordRequestForm(username=username, password=password, scope="")
    try:
        token = sign_in(form, request, db)
    except ProblemError as error:
        response = _page(
            request,
            "sign_in.html",
            None,
            next_path=safe_next(next_path),
            error=error.detail or error.title,
            username=username,
        )
        response.status_code = error.status
        if error.headers:
            response.headers.update(error.headers)
        return response
    chosen = safe_next(next_path)
    if chosen == "/app/":
        chosen = _landing(frozenset(Scope(s) for s in token.scope.split()))
    response = RedirectResponse(chosen, status_code=status.HTTP_303_SEE_OTHER)
    lifetime_s = max(1, int((token.expires_at - datetime.now(UTC)).total_seconds()))
    set_session_cookie(response, request, token.access_token, lifetime_s)
    return response


@router.post("/app/sign-out", dependencies=[SameOrigin])
def sign_out() -> RedirectResponse:
    response = RedirectResponse("/app/sign-in", status_code=status.HTTP_303_SEE_OTHER)
    clear_session_cookie(response)
    return response


@router.post("/app/session/refresh", status_code=204, dependencies=[SameOrigin])
def refresh_session(request: Request, principal: Anyone) -> Response:
    """Renew the cookie's token while a page stays open (a live session may outlast one token).

    The new token carries exactly the scopes of the current one, for the same user and role, and
    is issued only after ``authorize`` has accepted the current token.
    """
    token, expires = issue_token(
        request.app.state.auth_secret,
        user_id=principal.user_id,
        role=principal.role,
        scopes=principal.scopes,
    )
    response = Response(status_code=204)
    set_session_cookie(response, request, token, int(TOKEN_LIFETIME.total_seconds()))
    response.headers["X-Session-Expires"] = expires.isoformat()
    return response


# ---------------------------------------------------------------------------- today


@router.get("/app/", response_class=HTMLResponse)
def today(request: Request, db: SessionDep, principal: DeviceViewer, audit: AuditorDep) -> Response:
    manager: LiveSessions = request.app.state.live_sessions
    connections = []
    for connection in manager.connections():
        device = db.get(Device, connection.device_id)
        connections.append(
            {
                "device_id": connection.device_id,
                "label": (device.label or device.model) if device else "?",
                "serial": device.serial_number if device else "?",
                "driver": device.driver if device else "?",
                "url": connection.url,
                "state": connection.driver.state.value,
                "fault_reason": connection.driver.fault_reason,
            }
        )
    active: list[TreatmentSession] = []
    recent: list[TreatmentSession] = []
    codes: dict[int, str] = {}
    if principal.has(Scope.SESSIONS_READ) and principal.has(Scope.CLIENTS_READ):
        active = _sessions(db, ACTIVE_STATUSES)
        recent = _sessions(db, ENDED_STATUSES)[:10]
        codes = _client_codes(db, active + recent)
        _audit_sessions(audit, active + recent)
    return _page(
        request,
        "today.html",
        principal,
        connections=connections,
        active=active,
        recent=recent,
        codes=codes,
    )


# ---------------------------------------------------------------------------- clients


@router.get("/app/clients", response_class=HTMLResponse)
def clients_page(
    request: Request,
    db: SessionDep,
    principal: ClientReader,
    audit: AuditorDep,
    q: Annotated[SearchText, Query(max_length=64)] = "",
) -> Response:
    """Search clients by their pseudonymous code (a substring match, as codes are typed).

    ``%`` and ``_`` in the search are the characters themselves, not SQL wildcards; a search with a
    control character is refused (422 naming ``q``) before it reaches the database.
    """
    term = q.strip()
    where = [col(Client.code).contains(term, autoescape=True)] if term else []
    found = repository.list_page(db, Client, after_id=None, limit=50, where=where).items
    if found:
        audit.record("read", "client", after={"ids": [c.id for c in found]})
    return _page(
        request,
        "clients.html",
        principal,
        q=q,
        clients=[ClientPublic.model_validate(c) for c in found],
    )


@router.get("/app/clients/{client_id}", response_class=HTMLResponse)
def client_page(
    client_id: PathId, request: Request, db: SessionDep, principal: ClientReader, audit: AuditorDep
) -> Response:
    client = ClientPublic.model_validate(fetch(db, Client, "client", client_id))
    audit.record("read", "client", client_id)
    history = _sessions(db, [*ACTIVE_STATUSES, *ENDED_STATUSES], client_id=[client_id])
    _audit_sessions(audit, history)
    return _page(request, "client.html", principal, client=client, history=history)


# ---------------------------------------------------------------------------- sessions


@router.get("/app/sessions/new", response_class=HTMLResponse)
def new_session_page(
    request: Request,
    db: SessionDep,
    principal: SessionRunner,
    audit: AuditorDep,
    client_id: Annotated[int | None, Query(ge=1)] = None,
    device_id: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    manager: LiveSessions = request.app.state.live_sessions
    devices = []
    for connection in manager.connections():
        device = db.get(Device, connection.device_id)
        if device is not None:
            devices.append(
                {
                    "id": device.id,
                    "name": f"{device.label or device.model} ({device.serial_number})",
                    "state": connection.driver.state.value,
                    "channels": _channel_count(device),
                }
            )
    clients = repository.list_page(db, Client, after_id=None, limit=500).items
    if clients:
        audit.record("read", "client", after={"ids": [c.id for c in clients]})
    programs = [
        ProgramPublic.model_validate(p).model_dump(mode="json")
        for p in repository.list_page(db, Program, after_id=None, limit=200).items
    ]
    return _page(
        request,
        "new_session.html",
        principal,
        devices=devices,
        clients=[ClientPublic.model_validate(c) for c in clients],
        programs=programs,
        chosen_client=client_id,
        chosen_device=device_id,
        modalities=list(Modality),
        body_sites=list(BodySite),
        sides=list(Side),
        waveforms=list(Waveform),
        phase_types=list(PhaseType),
        warning_codes=list(WarningCode),
    )


def _channel_count(device: Device) -> int:
    """How many output channels the device reported (2 when it has not said)."""
    capabilities = device.capabilities or {}
    count = capabilities.get("channels")
    return count if isinstance(count, int) and 0 < count <= 64 else 2


@router.get("/app/sessions/{session_id}/live", response_class=HTMLResponse)
def live_page(
    session_id: PathId,
    request: Request,
    db: SessionDep,
    principal: SessionReader,
    audit: AuditorDep,
) -> Response:
    public, client_code = _session_read(db, audit, session_id)
    return _page(
        request,
        "live.html",
        principal,
        session=public,
        client_code=client_code,
        can_run=principal.has(Scope.SESSIONS_RUN),
    )


@router.get("/app/sessions/{session_id}", response_class=HTMLResponse)
def record_page(
    session_id: PathId,
    request: Request,
    db: SessionDep,
    principal: SessionReader,
    audit: AuditorDep,
) -> Response:
    public, client_code = _session_read(db, audit, session_id)
    events = records.session_events(db, session_id)
    audit.record("read", "session_events", session_id)
    return _page(
        request,
        "record.html",
        principal,
        session=public,
        events=events,
        client_code=client_code,
        can_correct=(
            principal.has(Scope.SESSIONS_WRITE)
            and public.superseded_by_id is None
            and public.status in ENDED_STATUSES
        ),
    )


# ---------------------------------------------------------------------------- analyst


@router.get("/app/overview", response_class=HTMLResponse)
def overview_page(request: Request, principal: Analyst) -> Response:
    """The chart's data comes from ``/api/v1/analytics/summary``, fetched by the page's script."""
    return _page(request, "overview.html", principal, modalities=list(Modality))
