"""Rendering a console page: the Jinja2 templates (``templates/``, every page extending ``base.html``) with
what every page needs: the user and their navigation, the locale and its ``t``, the CSRF token for forms,
a flash message, and the filters that format instants and amounts.

``render(request, "page.html", {...})`` is the one way a handler answers with a page, so that a module
added later (a queue, a case list) gets the same header, language switcher and landmarks for free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from kindly.domain.masking import mask_reference
from kindly.programs.console.auth import PAGE_ROLES, SESSION_LOCALE, console_root
from kindly.programs.console.context import get_console
from kindly.programs.console.i18n import DEFAULT_LOCALE, LOCALE_NAMES, LOCALES, Translate, negotiate
from kindly.store.users import User

TEMPLATES = Path(__file__).parent / "templates"
NAV: tuple[str, ...] = ("queue", "cases", "accounts", "dashboard", "audit")
"""The navigation's pages in order; each is ``/console/<name>``, shown to the roles of ``PAGE_ROLES``."""


@dataclass(frozen=True)
class NavItem:
    name: str
    href: str
    current: bool


def environment(directory: Path = TEMPLATES) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["mask_reference"] = mask_reference
    env.filters["money"] = money
    env.filters["instant"] = instant
    env.filters["query_with"] = query_with
    return env


def locale_of(request: Request) -> str:
    """The session's chosen locale, else the browser's preference, else en-US."""
    chosen = request.session.get(SESSION_LOCALE)
    if chosen in LOCALES:
        return str(chosen)
    return negotiate(request.headers.get("accept-language")) or DEFAULT_LOCALE


def translator(request: Request) -> Translate:
    """``t`` in the request's locale, for words a handler puts into a chart or a header."""
    return get_console(request).catalogs.translator(locale_of(request))


def nav_for(user: User | None, root: str, path: str) -> list[NavItem]:
    if user is None:
        return []
    items = []
    for name in NAV:
        if user.role in PAGE_ROLES[name]:
            href = f"{root}/{name}"
            items.append(NavItem(name, href, path == href or path.startswith(href + "/")))
    return items


def render(
    request: Request, template: str, context: Mapping[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """The page ``template`` with ``context`` and what every page shares (see the module's doc)."""
    console = get_console(request)
    locale = locale_of(request)
    t = console.catalogs.translator(locale)
    user: User | None = getattr(request.state, "user", None)
    root = console_root(request)
    flash = request.query_params.get("flash", "")
    # Where the language switcher comes back to: this page, when a GET can show it again (a page that
    # answers a POST names its own, ``here`` in ``context``).
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        here = f"{root}/"
    values: dict[str, Any] = {
        "request": request,
        "t": t,
        "locale": locale,
        "locales": [(code, LOCALE_NAMES[code]) for code in LOCALES],
        "user": user,
        "nav": nav_for(user, root, request.url.path),
        "root": root,
        "static": f"{root}/static",
        "here": here,
        "csrftoken": request.scope["csrftoken"](),
        "flash": t(f"flash.{flash}") if flash and console.catalogs.has(f"flash.{flash}") else None,
        "zone": console.config.zone,
        **(context or {}),
    }
    html = console.templates.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def money(amount: Decimal | str | float | None, currency: str | None = None) -> str:
    """``1,500.00 CNY``: two places, thousands grouped, the currency after (no symbol guessed)."""
    if amount is None or amount == "":
        return "–"
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    return f"{value:,.2f} {currency}" if currency else f"{value:,.2f}"


def instant(value: datetime | str | None, zone: ZoneInfo | None = None) -> str:
    """An instant as ``2026-12-08 09:35 +08:00``: in ``zone`` when given, else at its own offset (a
    timeline's instants are at the customer's)."""
    if value is None or value == "":
        return "–"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    if zone is not None:
        moment = moment.astimezone(zone)
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def query_with(params: Mapping[str, str], **changes: str | None) -> str:
    """``params`` as a query string with ``changes`` made (None removes one): pagers' links keep the
    filters. Empty values are left out, and a flash message is never carried on."""
    kept = {key: value for key, value in params.items() if value and key not in changes and key != "flash"}
    kept.update({key: value for key, value in changes.items() if value})
    return urlencode(kept)
