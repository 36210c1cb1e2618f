"""Signed-in pages: the session cookie, its bridge to the API's bearer scheme, and forgery checks.

A browser holds the same JWT that ``POST /api/v1/auth/token`` issues, in an HttpOnly, SameSite=Strict
cookie, so page scripts never see it. Two paths read that cookie and both end in
``sessionlog.api.auth.authorize``, so token checks, scopes and the audit principal are never
duplicated here: page routes call ``authorize`` with the cookie's token (``PageUser``), and
``CookieBearerMiddleware`` presents the cookie to ``/api/v1`` as an ``Authorization: Bearer`` header
when the request carries no credentials of its own. A state-changing request authenticated by the
cookie must also come from the service's own origin (its ``Origin`` header names the ``Host`` it was
sent to); a cross-site page can neither send the cookie (SameSite=Strict) nor pass that check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.security import SecurityScopes
from sqlalchemy import Engine
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from sessionlog.api.auth import authorize
from sessionlog.api.deps import get_engine
from sessionlog.api.problems import ProblemError, problem_response
from sessionlog.security.principal import Principal
from sessionlog.security.scopes import Scope as AccessScope

COOKIE_NAME = "sessionlog_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_PATH_PREFIX = "/api/"
SIGN_IN_PATH = "/app/sign-in"


def same_origin(headers: Headers) -> bool:
    """Whether the request's ``Origin`` names the host it was sent to.

    Browsers send ``Origin`` with every state-changing request, and a page on another site cannot
    forge it; a missing or ``null`` origin is refused rather than trusted. Only the host and port
    are compared, so a TLS-terminating proxy in front of the service does not break the check.
    """
    origin = headers.get("origin")
    host = headers.get("host")
    if not origin or origin == "null" or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


class CookieBearerMiddleware:
    """Presents the page cookie to ``/api/v1`` as a bearer token, after the cross-site check.

    A request that already carries ``Authorization`` or ``X-API-Key`` is passed through untouched:
    the cookie never overrides a credential the caller chose. A pure ASGI middleware (not
    ``BaseHTTPMiddleware``), so the live Server-Sent Events stream is not buffered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(API_PATH_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        token = _cookie_token(headers)
        if token is None or "authorization" in headers or "x-api-key" in headers:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and not same_origin(headers):
            response = problem_response(
                Request(scope),
                403,
                "Cross-site request refused",
                detail="a request signed in by the page cookie must come from this service's pages",
                kind="forbidden",
            )
            await response(scope, receive, send)
            return
        bridged = dict(scope)
        bridged["headers"] = [*scope["headers"], (b"authorization", f"Bearer {token}".encode())]
        await self.app(bridged, receive, send)


def _cookie_token(headers: Headers) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE_NAME and value:
            return value
    return None


class SignInRequiredError(Exception):
    """The page needs a signed-in user; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageForbiddenError(Exception):
    """The signed-in role lacks a scope the page needs; answered with a page saying which."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def page_user(*scopes: AccessScope) -> Callable[..., Principal]:
    """A dependency that authorises a page with ``authorize`` and the page's scopes.

    A sync function on purpose: ``authorize`` reads the database, so FastAPI runs it in a worker
    thread. On success ``request.state.principal`` is set, which ``AuditorDep`` needs.
    """

    def dependency(request: Request, engine: Annotated[Engine, Depends(get_engine)]) -> Principal:
        token = request.cookies.get(COOKIE_NAME)
        if not token:
            raise SignInRequiredError(request.url.path)
        try:
            return authorize(SecurityScopes(list(scopes)), request, engine, token, None)
        except ProblemError as error:
            if error.status == 401:
                raise SignInRequiredError(request.url.path) from error
            raise PageForbiddenError(error.detail or error.title) from error

    return dependency


def require_same_origin(request: Request) -> None:
    """Refuse a page form post that did not come from this service's own pages."""
    if not same_origin(request.headers):
        raise ProblemError(
            403,
            "Cross-site request refused",
            detail="this form must be sent from this service's own pages",
            kind="forbidden",
        )


SameOrigin = Depends(require_same_origin)


def set_session_cookie(response: Response, request: Request, token: str, max_age_s: int) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=max_age_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")


def safe_next(path: str | None) -> str:
    """Where to go after signing in: only a page of this service, never another site."""
    if path and path.startswith("/app/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/app/"


def install_page_error_handlers(app: FastAPI) -> None:
    """Answer page authorisation failures as pages: a sign-in redirect, or a 403 page."""
    from sessionlog.web.templating import templates

    async def sign_in_required(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequiredError)
        response = RedirectResponse(
            f"{SIGN_IN_PATH}?next={quote(error.next_path, safe='/')}", status_code=303
        )
        clear_session_cookie(response)
        return response

    async def forbidden(request: Request, error: Exception) -> Response:
        assert isinstance(error, PageForbiddenError)
        return templates.TemplateResponse(
            request, "forbidden.html", {"detail": error.detail, "principal": None}, status_code=403
        )

    app.add_exception_handler(SignInRequiredError, sign_in_required)
    app.add_exception_handler(PageForbiddenError, forbidden)


__all__ = [
    "COOKIE_NAME",
    "CookieBearerMiddleware",
    "PageForbiddenError",
    "SameOrigin",
    "SignInRequiredError",
    "page_user",
    "safe_next",
    "same_origin",
]
