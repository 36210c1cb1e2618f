"""The practitioner's web pages: server-rendered Jinja2 templates over the same service as the API.

The pages sit beside ``/api/v1`` and change nothing in it. ``install_web`` adds them to an app: the
page router under ``/app``, the hand-written CSS and JavaScript under ``/app/static``, and the
middleware that lets the pages' own JavaScript call the JSON API with the signed-in cookie. Every
page and every API call from a page is authorised by ``sessionlog.api.auth.authorize`` with the
route's scopes, so a role sees in the browser exactly what it may do through the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from sessionlog.web.pages import router
from sessionlog.web.security import CookieBearerMiddleware, install_page_error_handlers

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/app/static"

__all__ = ["STATIC_DIR", "STATIC_PATH", "install_web", "router"]


def install_web(app: FastAPI) -> None:
    """Serve the pages on ``app``: router, static files, cookie bridge and sign-in redirects."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="web-static")
    app.add_middleware(CookieBearerMiddleware)
    install_page_error_handlers(app)
