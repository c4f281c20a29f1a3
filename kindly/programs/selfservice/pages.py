"""Rendering the customer's page: the Jinja2 templates (``templates/``, each extending ``base.html``), in
the visitor's language, with amounts and dates written as the reminders write them.

The language: a ``?lang=`` the visitor chose (the switch in the header; forms and redirects carry it on),
else the account's own (the language its reminder came in, once the page has the account's offer), else
the browser's ``Accept-Language``, else ``self_service_default_locale``. A dead end knows no account and
shows the browser's language, so that it tells nothing about one.

``neutral`` is the one page every dead end shows (an unknown, malformed or expired link, an account that
has ended): the same words whatever the reason, so that it tells a visitor nothing about any account.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from kindly.domain.messages.formatting import format_date, format_money
from kindly.programs.console.i18n import LOCALE_NAMES, LOCALES, Catalogs, negotiate
from kindly.programs.selfservice.context import PageConfig, get_self_service

TEMPLATES = Path(__file__).parent / "templates"
LOCALES_DIR = Path(__file__).parent / "locales"


def environment(directory: Path = TEMPLATES) -> Environment:
    return Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def catalogs() -> Catalogs:
    return Catalogs.load(LOCALES_DIR)


def chosen_locale(request: Request) -> str | None:
    """The language the visitor picked with the switch, if a supported one."""
    chosen = request.query_params.get("lang")
    return chosen if chosen in LOCALES else None


def locale_of(request: Request, config: PageConfig, account_locale: str | None = None) -> str:
    account = account_locale if account_locale in LOCALES else None
    browser = negotiate(request.headers.get("accept-language"))
    return chosen_locale(request) or account or browser or config.default_locale


def page_root(request: Request) -> str:
    """Where the page is mounted (``/p``), as the API's mount gives it."""
    return str(request.scope.get("root_path", ""))


def with_lang(path: str, request: Request) -> str:
    """``path`` keeping the visitor's choice of language, when they made one."""
    chosen = chosen_locale(request)
    return f"{path}?lang={chosen}" if chosen else path


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    token: str | None = None,
) -> HTMLResponse:
    """The page ``template`` with ``context``. ``token``: the link's, whose page the forms and the links
    lead to; a dead end has none."""
    ss = get_self_service(request)
    offer = (context or {}).get("offer")
    locale = locale_of(request, ss.config, getattr(offer, "locale", None))
    root = page_root(request)
    home = f"{root}/{token}" if token is not None else ""
    # The language switch reloads this page where a GET shows it again, else the link's own page; a dead
    # end's reloads the address as it is (``?lang=`` alone), so that it holds no token.
    here = request.url.path if token is not None and request.method == "GET" else home

    def money(amount: Decimal, currency: str) -> str:
        return format_money(amount, currency, locale)

    def day(value: dt.date) -> str:
        return format_date(value, locale)

    def csrf() -> str:
        """The form's CSRF token: asked only by pages with a form, so that only they set its cookie."""
        return str(request.scope["csrftoken"]())

    def action(name: str) -> str:
        return with_lang(f"{home}/{name}", request)

    values: dict[str, Any] = {
        "t": ss.catalogs.translator(locale),
        "locale": locale,
        "switch": [(code, LOCALE_NAMES[code], f"{here}?lang={code}") for code in LOCALES],
        "static": f"{root}/static",
        "home": with_lang(home, request) if token is not None else None,
        "hotline": ss.config.hotline,
        "money": money,
        "day": day,
        "csrf": csrf,
        "action": action,
        **(context or {}),
    }
    html = ss.templates.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code)


def neutral(request: Request, status_code: int) -> HTMLResponse:
    """The dead end: "nothing is due on this link", with the hotline; 404 or 410, the body the same."""
    return render(request, "neutral.html", status_code=status_code)


def notice(request: Request, what: str, status_code: int, token: str | None, **context: Any) -> HTMLResponse:
    """A short page saying why a choice did not go through (``notice.<what>.*`` in the catalogs)."""
    return render(request, "notice.html", {"what": what, **context}, status_code=status_code, token=token)
