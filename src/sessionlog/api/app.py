"""The FastAPI application: routers under ``/api/v1``, problem details, and the database at start-up.

``create_app`` builds an app for given settings (tests build one per database); the start-up checks
that the schema is current, migrating the embedded default and refusing any other stale database with
the command that fixes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import sessionlog
from sessionlog.api.problems import install_problem_handlers
from sessionlog.api.routes import (
    clients,
    devices,
    health,
    limits,
    live,
    programs,
    sessions,
    users,
)
from sessionlog.sessions.live import LiveSessions
from sessionlog.settings import Settings
from sessionlog.store.database import make_engine
from sessionlog.store.migrations import ensure_migrated

API_PREFIX = "/api/v1"

DESCRIPTION = """
Treatment-session logging for electrical stimulators (EMS and microcurrent).

Every error is an RFC 9457 problem document (`application/problem+json`) naming the field and the
reason. Currents are integers in µA unless a field says `_ma`; every current input names its unit.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.effective_database_url)
        try:
            ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
            app.state.engine = engine
            live_sessions = LiveSessions(engine, settings)
            live_sessions.recover_interrupted()
            app.state.live_sessions = live_sessions
            try:
                yield
            finally:
                live_sessions.shutdown()
        finally:
            engine.dispose()

    app = FastAPI(
        title="sessionlog",
        version=sessionlog.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    for module in (health, users, clients, devices, programs, sessions, limits, live):
        app.include_router(module.router, prefix=API_PREFIX)
    return app
