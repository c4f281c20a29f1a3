"""The staff console as an ASGI application of its own, which the API mounts at ``/console``.

A separate application keeps the console's cookies, CSRF checks and HTML error pages away from the JSON
API, the webhooks and the codec server: none of their requests ever passes through the console's
middleware. Sessions are Starlette's ``SessionMiddleware`` (a signed cookie holding only a server-side
session's random token and the chosen locale); CSRF is asgi-csrf (a signed double-submit cookie, checked
against the ``csrftoken`` field every console form carries). Both cookies are ``SameSite=Strict``, scoped to
the console's path and, unless ``console_cookie_secure`` is off (``make run`` over plain HTTP), HTTPS-only.

A module that adds pages (a work queue, a case list) defines an ``APIRouter`` whose handlers answer with
``pages.render`` and take ``auth.CurrentUser``, ``auth.require(...)`` or ``auth.require_page(...)``, and
adds the router to ``ROUTERS``; its templates extend ``base.html`` (docs/console.md).
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from asgi_csrf import asgi_csrf  # type: ignore[import-untyped]
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from temporalio.service import RPCError

from kindly.programs.console import (
    accounts,
    actions_route,
    audit_view,
    cases,
    dashboard,
    login,
    queue,
    reports,
)
from kindly.programs.console.auth import Forbidden, LoginRequired, console_root
from kindly.programs.console.context import ConsoleConfig, ConsoleContext
from kindly.programs.console.i18n import Catalogs
from kindly.programs.console.pages import environment, render
from kindly.store.console_sessions import ConsoleSessions
from kindly.store.users import UserStore

if TYPE_CHECKING:  # the API mounts the console: importing it here at run time would be circular
    from kindly.programs.api.deps import ApiContext

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "kindly_console"
CSRF_COOKIE = "kindly_csrf"

ROUTERS: tuple[APIRouter, ...] = (
    login.router,
    accounts.router,
    actions_route.router,
    dashboard.router,
    reports.router,
    audit_view.router,
    queue.router,
    cases.router,
)
"""Every page of the console; a module that adds pages adds its router here."""


def create_console(context: ApiContext, prefix: str = "/console") -> FastAPI:
    """The console over the API's context, for mounting at ``prefix``."""
    settings = context.api_settings
    config = ConsoleConfig.of(settings)
    secret = _session_secret(settings.console_session_secret)
    app = FastAPI(title="Kindly console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = ConsoleContext(
        api=context,
        users=UserStore(context.engine),
        sessions=ConsoleSessions(context.engine),
        catalogs=Catalogs.load(),
        templates=environment(),
        config=config,
    )
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(RPCError, _temporal_unavailable)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        max_age=int(config.session_lifetime.total_seconds()),
        path=prefix,
        same_site="strict",
        https_only=config.cookie_secure,
    )
    # Outermost: a forged POST is refused before any handler or session is touched. A POST without any
    # cookie passes asgi-csrf unchecked unless its path is "always protected": the login form is, so
    # nobody can sign a colleague's browser in under another name.
    app.add_middleware(
        asgi_csrf,
        signing_secret=secret,
        signing_namespace="kindly-console-csrf",
        cookie_name=CSRF_COOKIE,
        cookie_path=prefix,
        cookie_secure=config.cookie_secure,
        cookie_samesite="Strict",
        always_protect={f"{prefix}/login", f"{prefix}/locale"},
    )
    return app


def _session_secret(configured: SecretStr | None) -> str:
    if configured is not None:
        return configured.get_secret_value()
    logger.warning(
        "COLLECTIONS_CONSOLE_SESSION_SECRET is not set: the console signs its cookies with a random "
        "secret made now, so console sessions end when the API restarts, and replicas do not share them"
    )
    return secrets.token_urlsafe(48)


async def _to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    target = f"{console_root(request)}/login"
    if exc.next_path:
        target += "?" + urlencode({"next": exc.next_path})
    return RedirectResponse(target, status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    return render(request, "forbidden.html", {"what": exc.what}, status_code=403)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(request, "error.html", {"code": exc.status_code}, status_code=exc.status_code)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", {"code": 400}, status_code=400)


async def _temporal_unavailable(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", {"code": 503}, status_code=503)
