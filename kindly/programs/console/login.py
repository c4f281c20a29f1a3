"""Signing in and out, the language switch, and ``/console/`` sending each role to its home page.

A login starts a new server-side session and replaces whatever the cookie held before (no session
fixation); a logout ends the server-side session, so a copied cookie is worthless afterwards. The page
never says whether the name or the password was wrong, and a locked user is told when to try again,
even when the password typed was right (``kindly.store.users``: five failures lock it for 15 minutes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from kindly.programs.console.auth import (
    HOME,
    SESSION_LOCALE,
    SESSION_TOKEN,
    CurrentUser,
    console_root,
    now,
    safe_next,
)
from kindly.programs.console.context import Console
from kindly.programs.console.i18n import LOCALES
from kindly.programs.console.pages import render
from kindly.store.users import LoginRefused, UserRecord

router = APIRouter(include_in_schema=False)

NAME_MAX = 64
PASSWORD_MAX = 1024
"""Longer input is refused before argon2 hashes it: a megabyte password would only cost CPU."""


@router.get("/")
async def home(request: Request, user: CurrentUser) -> Response:
    return RedirectResponse(console_root(request) + HOME[user.role], status_code=303)


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    context = {"next": _next(request, next), "name": "", "error": None, "until": None}
    return render(request, "login.html", context)


@router.post("/login")
async def login(
    request: Request,
    console: Console,
    name: Annotated[str, Form(max_length=NAME_MAX)] = "",
    password: Annotated[str, Form(max_length=PASSWORD_MAX)] = "",
    next: Annotated[str | None, Form()] = None,
) -> Response:
    target = _next(request, next)
    at = now()
    try:
        user = await run_in_threadpool(console.users.login, name, password, at=at)
    except LoginRefused:
        locked = await run_in_threadpool(_locked_until, console, name, at)
        context = {
            "next": target,
            "name": name,
            "error": "locked" if locked else "wrong",
            "until": locked,
            "here": f"{console_root(request)}/login",
        }
        return render(request, "login.html", context, status_code=401)
    token = await run_in_threadpool(console.sessions.start, user.name, at, console.config.session_lifetime)
    locale = request.session.get(SESSION_LOCALE)
    request.session.clear()
    request.session[SESSION_TOKEN] = token
    if locale in LOCALES:
        request.session[SESSION_LOCALE] = locale
    return RedirectResponse(target or console_root(request) + HOME[user.role], status_code=303)


@router.post("/logout")
async def logout(request: Request, console: Console) -> Response:
    token = request.session.get(SESSION_TOKEN)
    if isinstance(token, str) and token:
        await run_in_threadpool(console.sessions.end, token)
    request.session.pop(SESSION_TOKEN, None)
    return RedirectResponse(f"{console_root(request)}/login?flash=logged_out", status_code=303)


@router.post("/locale")
async def choose_locale(
    request: Request, locale: Annotated[str, Form()], next: Annotated[str | None, Form()] = None
) -> Response:
    """The language switcher: kept in the session for this browser, before or after login."""
    if locale in LOCALES:
        request.session[SESSION_LOCALE] = locale
    target = _next(request, next) or f"{console_root(request)}/"
    return RedirectResponse(target, status_code=303)


def _next(request: Request, value: str | None) -> str | None:
    if not value:
        return None
    path, _, query = value.partition("?")
    return safe_next(request, path, query)


def _locked_until(console: Console, name: str, at: datetime) -> datetime | None:
    """When the user's lock ends, if the user is locked at ``at`` (after a refused login)."""
    with Session(console.api.engine) as session:
        record = session.get(UserRecord, name)
        if record is None or record.locked_until is None:
            return None
        until = record.locked_until
        until = until if until.tzinfo is not None else until.replace(tzinfo=at.tzinfo)
        return until if until > at else None
