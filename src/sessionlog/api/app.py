"""The FastAPI application: routers under ``/api/v1``, problem details, and the database at start-up.

``create_app`` builds an app for given settings (tests build one per database); the start-up loads
the configured site policy, so a missing or invalid policy file stops the service (SitePolicyError
naming the file and the reason) instead of leaving the site layer absent, and checks that the schema
is current, migrating the embedded default and refusing any other stale database with the command
that fixes it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import sessionlog
from sessionlog.api.problems import install_problem_handlers
from sessionlog.api.routes import (
    analytics,
    audit,
    auth,
    clients,
    devices,
    health,
    keys,
    limits,
    live,
    programs,
    sessions,
    users,
)
from sessionlog.safety import SitePolicyError
from sessionlog.security.bootstrap import PASSWORD_FILE, create_initial_admin
from sessionlog.security.rate_limit import LoginRateLimiter
from sessionlog.security.secrets import auth_secret
from sessionlog.sessions.approval import site_policy
from sessionlog.sessions.live import LiveSessions
from sessionlog.settings import Settings
from sessionlog.store.database import make_engine
from sessionlog.store.migrations import ensure_migrated
from sessionlog.web import install_web

API_PREFIX = "/api/v1"
logger = logging.getLogger(__name__)

DESCRIPTION = """
Treatment-session logging for electrical stimulators (EMS and microcurrent).

Sign in with `POST /api/v1/auth/token` (OAuth2 password flow) and send the token as
`Authorization: Bearer …`, or send an API key as `X-API-Key`. Each route lists the scopes it needs.

Every error is an RFC 9457 problem document (`application/problem+json`) naming the field and the
reason. Currents are integers in µA unless a field says `_ma`; every current input names its unit.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            policy = site_policy(settings)
        except SitePolicyError as error:
            logger.error("cannot start: site policy %s", error)
            raise
        if policy is not None:
            logger.info(
                "site policy %s loaded from %s",
                policy.name or "(unnamed)",
                settings.site_policy_path,
            )
        engine = make_engine(settings.effective_database_url)
        try:
            ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
            if settings.uses_embedded_database and create_initial_admin(engine, settings):
                # The password itself never goes to a log: only where to find it.
                logger.warning(
                    "created the first administrator: sign in as 'admin' with the password "
                    "in %s (owner-only file), then change it",
                    Path(settings.data_dir).resolve() / PASSWORD_FILE,
                )
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
    app.state.auth_secret = auth_secret(settings)
    app.state.login_limiter = LoginRateLimiter()
    install_problem_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "Idempotency-Key",
                "X-API-Key",
            ],
            expose_headers=["ETag", "Location"],
        )
    for module in (
        health,
        auth,
        users,
        keys,
        audit,
        clients,
        devices,
        programs,
        sessions,
        limits,
        live,
        analytics,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    install_web(app)
    return app
