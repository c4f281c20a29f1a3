"""What stands between the public and the page's handlers: security headers on every answer, the rate
limits, CSRF on every form, and access logs that never hold a link's token.

* Headers: the token is in the address, so no page may leak it: ``Referrer-Policy: no-referrer`` (the
  lender's payment page and any link learn nothing), ``Cache-Control: no-store`` (no shared cache or
  back button keeps an account's page), a CSP that allows no script at all and forms only to the page
  itself and the lender's payment page (Chrome checks a form's redirect against ``form-action`` too),
  and no framing.
* Limits (``limits.py``): per client address, then per link for choices; 429 with a neutral page.
* CSRF: asgi-csrf, as the console does, with its own cookie scoped to the page's path. The page has no
  session, so a POST without any cookie is refused as well (asgi-csrf lets such a POST through unless
  its path is "always protected": here every path is).
* Logs: uvicorn's access log writes each request's path; ``RedactLinkTokens`` writes ``/p/…`` instead of
  the token, which is as good as a key to the account's page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kindly.domain.messages.links import is_token
from kindly.programs.selfservice.limits import PageLimits
from kindly.store.self_service_links import token_hash

STATIC = "static"
"""The stylesheet's folder below the mount: not a token, and not counted."""

Refusal = Callable[[Request, int], Awaitable[Response]]
"""Makes the page that answers a refused request: the request and its status."""


def content_security_policy(payment_origin: str | None) -> str:
    forms = "'self'" + (f" {payment_origin}" if payment_origin else "")
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {forms}; frame-ancestors 'none'; base-uri 'none'"
    )


class SecurityHeaders:
    """Adds the headers above to every answer, errors and static files included."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-store"),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
        ]
        self._names = {name for name, _ in self.headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self._names]
                message = {**message, "headers": [*kept, *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def token_in(scope: Scope) -> str | None:
    """The path's first segment below the mount (the link's token, or ``static``), if any."""
    below = str(scope["path"]).removeprefix(str(scope.get("root_path", ""))).lstrip("/")
    first = below.split("/", 1)[0]
    return first or None


class Throttle:
    """The rate limits, before anything else reads the request: per client address for every request but
    the stylesheet, per link for choices (the link counted by its token's hash, a malformed one too)."""

    def __init__(
        self, app: ASGIApp, limits: PageLimits, refuse: Refusal, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.app = app
        self.limits = limits
        self.refuse = refuse
        self.clock = clock or (lambda: datetime.now(UTC))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = token_in(scope) if scope["type"] == "http" else None
        if token is None or token == STATIC:
            await self.app(scope, receive, send)
            return
        now = self.clock()
        client = scope.get("client")
        address = client[0] if client else "unknown"
        retry_after = None
        if not self.limits.per_address.allow(address, now):
            retry_after = self.limits.per_address.window
        elif scope["method"] == "POST" and not self.limits.per_link.allow(token_hash(token), now):
            retry_after = self.limits.per_link.window
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        response = await self.refuse(Request(scope), 429)
        response.headers["Retry-After"] = str(int(retry_after.total_seconds()))
        await response(scope, receive, send)


class Everywhere:
    """asgi-csrf's ``always_protect``: every path of the page (it tests ``path in always_protect``)."""

    def __contains__(self, path: object) -> bool:
        return True


def csrf_refusal(refuse: Refusal) -> Callable[[Scope, Send, Any], Awaitable[None]]:
    """asgi-csrf's ``send_csrf_failed``: the page's own 403, not asgi-csrf's English line."""

    async def send_csrf_failed(scope: Scope, send: Send, _reason: Any) -> None:
        response = await refuse(Request(scope), 403)

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)

    return send_csrf_failed


class RedactLinkTokens(logging.Filter):
    """Rewrites ``<prefix>/<token>`` in a log record's arguments (uvicorn's access log) as ``<prefix>/…``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self._pattern = re.compile(re.escape(prefix.rstrip("/") + "/") + r"[^/?#\s\"]+")

    def _redact(self, value: object) -> object:
        if isinstance(value, str):
            return self._pattern.sub(self.prefix.rstrip("/") + "/…", value)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(arg) for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = str(self._redact(record.msg))
        return True


def redact_access_log(prefix: str, logger_name: str = "uvicorn.access") -> None:
    """Installs ``RedactLinkTokens`` once per prefix on the access logger."""
    access = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactLinkTokens) and f.prefix == prefix for f in access.filters):
        access.addFilter(RedactLinkTokens(prefix))


def home_of(scope: Scope) -> str | None:
    """The token of the link a refused request was for, when the path has a token's shape."""
    token = token_in(scope)
    return token if token is not None and is_token(token) else None
