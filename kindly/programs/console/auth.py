"""Who is asking: the signed-in user from the server-side session, and what they may see and do.

The session cookie (Starlette's ``SessionMiddleware``, signed) carries only a random token and the chosen
locale; the token names a row in ``ConsoleSessions``, which ends it after the session's lifetime or its
idle timeout, at logout, or when every session of a user is ended. Nothing the cookie says about a user
is believed: the role is read from the users' table at every request, so a changed role applies at once.

Handlers take ``CurrentUser`` (any signed-in user), ``require(Permission.X)`` (an account action's
permission, ``kindly.domain.roles``) or ``require_page("name")`` (a page's roles, ``PAGE_ROLES``). Without
a session the answer is a 303 to the login page with ``next``; without the right a 403 page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlmodel import Session

from kindly.domain.roles import Permission, Role, may
from kindly.programs.console.context import Console
from kindly.store.users import User, UserRecord

SESSION_TOKEN = "token"
SESSION_LOCALE = "locale"

ALL_ROLES = frozenset(Role)
PAGE_ROLES: dict[str, frozenset[Role]] = {
    "queue": frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN}),
    "cases": frozenset({Role.SPECIALIST, Role.SUPERVISOR, Role.ADMIN}),
    "accounts": ALL_ROLES,
    "dashboard": frozenset({Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN}),
    "audit": frozenset({Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN}),
}
"""Who sees each page of the navigation; the nav and the pages' checks read this one table."""

HOME: dict[Role, str] = {
    Role.AGENT: "/queue",
    Role.SPECIALIST: "/cases",
    Role.SUPERVISOR: "/dashboard",
    Role.ADMIN: "/dashboard",
    Role.COMPLIANCE: "/audit",
}
"""Where ``/console/`` sends each role (paths under the console)."""


class LoginRequired(Exception):
    """No live session: the console answers with a redirect to its login page."""

    def __init__(self, next_path: str | None) -> None:
        super().__init__("login required")
        self.next_path = next_path


class Forbidden(Exception):
    """The user lacks the permission or the page's role: the console answers 403 with a page saying so."""

    def __init__(self, what: str) -> None:
        super().__init__(f"not allowed: {what}")
        self.what = what


def now() -> datetime:
    return datetime.now(UTC)


def current_user(request: Request, console: Console) -> User:
    """The user of the request's session, else ``LoginRequired`` (blocking: FastAPI runs it in a thread)."""
    token = request.session.get(SESSION_TOKEN)
    name = None
    if isinstance(token, str) and token:
        name = console.sessions.user_for(token, now(), console.config.idle_timeout)
    user = None if name is None else role_of(console, name)
    if user is None:
        request.session.pop(SESSION_TOKEN, None)
        raise LoginRequired(safe_next(request, request.url.path, request.url.query))
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def role_of(console: Console, name: str) -> User | None:
    """The user ``name`` as the users' table says now; None when it has gone."""
    with Session(console.api.engine) as session:
        record = session.get(UserRecord, name)
        return None if record is None else User(record.name, Role(record.role))


def require(permission: Permission) -> Any:
    """A dependency giving the current user when their role has ``permission``; else ``Forbidden``."""

    def allowed(user: CurrentUser) -> User:
        if not may(user.role, permission):
            raise Forbidden(str(permission))
        return user

    return Depends(allowed)


def require_page(page: str) -> Any:
    """A dependency giving the current user when their role may see ``page`` (``PAGE_ROLES``)."""
    roles = PAGE_ROLES[page]

    def allowed(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden(page)
        return user

    return Depends(allowed)


def console_root(request: Request) -> str:
    """The console's path prefix as the browser sees it (``/console``, behind any proxy prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def safe_next(request: Request, path: str | None, query: str = "") -> str | None:
    """``path`` (with ``query``) when it is a page of this console, else None: ``next`` never leads off
    the console (no other host: no ``//``, no backslash)."""
    root = console_root(request)
    if not path or not path.startswith(root + "/") or "//" in path or "\\" in path:
        return None
    return f"{path}?{query}" if query else path
