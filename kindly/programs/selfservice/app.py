"""The customer's self-service page as an ASGI application of its own, which the API mounts at ``/p``.

A reminder ends with ``<public base URL>/p/<token>``; the token, issued per touchpoint by
``kindly.store.self_service_links``, is the only key: no login, no session. The page shows what is due
(masked reference, amount, due date) and takes the customer's choice: pay now, a promise, an instalment
plan, "I can't pay right now", "this is not my loan", stop SMS; each goes to the account's workflow as the
``self_service`` update (docs/self-service.md).

Like the console, it is a separate application so that its headers, limits, CSRF checks and HTML pages
never touch the JSON API, the webhooks or the console; its guards (``guards.py``) wrap every request,
from the outermost: security headers, rate limits, then asgi-csrf with its own cookie scoped to the
page's path.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from asgi_csrf import asgi_csrf  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr
from starlette.exceptions import HTTPException
from temporalio.service import RPCError

from kindly.keyring import load_keyring
from kindly.programs.selfservice import choices, routes
from kindly.programs.selfservice.context import PageConfig, SelfServiceContext
from kindly.programs.selfservice.guards import (
    Everywhere,
    SecurityHeaders,
    Throttle,
    content_security_policy,
    csrf_refusal,
    home_of,
    redact_access_log,
)
from kindly.programs.selfservice.limits import PageLimits
from kindly.programs.selfservice.pages import catalogs, environment, neutral, notice
from kindly.programs.selfservice.payment import payment_origin
from kindly.store.self_service_links import SelfServiceLinks

if TYPE_CHECKING:  # the API mounts the page: importing it here at run time would be circular
    from kindly.programs.api.deps import ApiContext

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
CSRF_COOKIE = "kindly_page_csrf"


def create_self_service(context: ApiContext, prefix: str = "/p") -> FastAPI:
    """The page over the API's context, for mounting at ``prefix``."""
    settings = context.api_settings
    config = PageConfig.of(context.settings, settings)
    app = FastAPI(title="Kindly self-service", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.self_service = SelfServiceContext(
        client=context.client,
        links=SelfServiceLinks(context.engine, load_keyring(context.settings)),
        catalogs=catalogs(),
        templates=environment(),
        limits=PageLimits.of(settings.self_service_requests_per_minute, settings.self_service_posts_per_hour),
        config=config,
    )
    app.include_router(routes.router)
    app.include_router(choices.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(HTTPException, _not_here)
    app.add_exception_handler(RequestValidationError, _not_here)
    app.add_exception_handler(RPCError, _temporal_unavailable)
    app.add_middleware(
        asgi_csrf,
        signing_secret=_csrf_secret(settings.self_service_secret),
        signing_namespace="kindly-page-csrf",
        cookie_name=CSRF_COOKIE,
        cookie_path=prefix,
        cookie_secure=config.cookie_secure,
        cookie_samesite="Strict",
        always_protect=Everywhere(),
        send_csrf_failed=csrf_refusal(_refused),
    )
    app.add_middleware(Throttle, limits=app.state.self_service.limits, refuse=_refused)
    payment = config.payment
    origin = payment_origin(payment.url_template) if payment is not None else None
    app.add_middleware(SecurityHeaders, csp=content_security_policy(origin))
    redact_access_log(prefix)
    return app


def _csrf_secret(configured: SecretStr | None) -> str:
    if configured is not None:
        return configured.get_secret_value()
    logger.warning(
        "COLLECTIONS_SELF_SERVICE_SECRET is not set: the self-service page signs its CSRF cookie with a "
        "random secret made now, so a form shown before a restart, or by another replica, is refused once"
    )
    return secrets.token_urlsafe(48)


async def _refused(request: Request, status_code: int) -> Response:
    """A request the guards turned away: too many (429), or a form without its CSRF token (403)."""
    what = "too_many" if status_code == 429 else "expired"
    return notice(request, what, status_code, home_of(request.scope))


async def _not_here(request: Request, exc: Exception) -> Response:
    """No such page (or a bad address): the neutral page, whatever the path held."""
    code = exc.status_code if isinstance(exc, HTTPException) and exc.status_code != 405 else 404
    return neutral(request, code)


async def _temporal_unavailable(request: Request, exc: Exception) -> Response:
    return notice(request, "busy", 503, home_of(request.scope))
