"""The staff console's sign-in, sessions and CSRF protection, through a real server on 127.0.0.1: a login
starts a server-side session and a logout ends it (a copied cookie is then worthless), a wrong password
and a locked user are told so, a page without a session leads to the login page and back, a form without
its CSRF token is refused, roles decide which pages open, and the JSON API is untouched by any of it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.domain.roles import Role
from kindly.programs.api import create_app
from kindly.settings import Settings
from kindly.store import make_engine
from kindly.store.users import MAX_FAILED_LOGINS, UserStore
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.test_api import AUTH, api_settings

PASSWORD = "correct horse battery"
SECRET = "console-test-secret-of-more-than-32-characters"
USERS = {
    "ana": Role.AGENT,
    "sol": Role.SPECIALIST,
    "sam": Role.SUPERVISOR,
    "cai": Role.COMPLIANCE,
    "ada": Role.ADMIN,
}


@dataclass
class Site:
    """The API (console mounted) on a real server, and the database it shares with the worker."""

    base: str
    engine: Engine

    def browser(self) -> httpx.AsyncClient:
        """A browser of the console: keeps cookies, follows no redirect (the tests read them)."""
        return httpx.AsyncClient(base_url=f"{self.base}/console", timeout=60)


@asynccontextmanager
async def console_site(client: Client, settings: Settings, **overrides: Any) -> AsyncIterator[Site]:
    engine = make_engine(settings.database_url)
    users = UserStore(engine)
    for name, role in USERS.items():
        users.add(name, role, PASSWORD)
    values = {"console_cookie_secure": False, "console_session_secret": SECRET, **overrides}
    app = create_app(client, settings, api_settings(**values), engine)
    try:
        async with serving(app) as base:
            yield Site(base, engine)
    finally:
        engine.dispose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrftoken" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def form_token(http: httpx.AsyncClient, path: str = "/login") -> str:
    page = await http.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


async def login(http: httpx.AsyncClient, name: str, password: str = PASSWORD, **extra: str) -> httpx.Response:
    token = await form_token(http)
    return await http.post("/login", data={"name": name, "password": password, "csrftoken": token, **extra})


@asynccontextmanager
async def signed_in(site: Site, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as ``name``."""
    async with site.browser() as http:
        response = await login(http, name)
        assert response.status_code == 303, response.text
        yield http


def location(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text[:300])
    return response.headers["location"]


@pytest.fixture
async def site(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Site]:
    """The console over the time-skipping server (these tests need no workflow)."""
    async with console_site(env.client, settings) as served:
        yield served


async def test_a_page_without_a_session_leads_to_login_and_back(site: Site) -> None:
    async with site.browser() as http:
        away = await http.get("/audit", params={"kind": "sms_sent"})
        target = urlsplit(location(away))
        assert target.path == "/console/login"
        assert parse_qs(target.query)["next"] == ["/console/audit?kind=sms_sent"]
        page = await http.get(location(away).removeprefix("/console"))
        assert 'name="next" value="/console/audit?kind=sms_sent"' in page.text
        token = csrf_of(page.text)
        signed = await http.post(
            "/login",
            data={
                "name": "cai",
                "password": PASSWORD,
                "csrftoken": token,
                "next": "/console/audit?kind=sms_sent",
            },
        )
        assert location(signed) == "/console/audit?kind=sms_sent"
        audit = await http.get("/audit")
        assert audit.status_code == 200 and "cai" in audit.text and "Compliance" in audit.text


async def test_login_then_logout_ends_the_server_side_session(site: Site) -> None:
    async with site.browser() as http:
        assert location(await login(http, "sam")) == "/console/dashboard"
        assert (await http.get("/audit")).status_code == 200
        copied = dict(http.cookies)
        token = csrf_of((await http.get("/audit")).text)
        assert location(await http.post("/logout", data={"csrftoken": token})).startswith("/console/login")
        assert urlsplit(location(await http.get("/audit"))).path == "/console/login"
    async with site.browser() as replayed:
        replayed.cookies.update(copied)
        assert urlsplit(location(await replayed.get("/audit"))).path == "/console/login", (
            "a cookie copied before the logout opens nothing"
        )


async def test_the_session_cookie_is_signed_strict_and_scoped_to_the_console(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    async with (
        console_site(env.client, settings, console_cookie_secure=True) as served,
        served.browser() as http,
    ):
        page = await http.get("/login")
        [csrf_cookie] = page.headers.get_list("set-cookie")
        assert "SameSite=Strict" in csrf_cookie and "Path=/console" in csrf_cookie and "Secure" in csrf_cookie
        # A Secure cookie is never sent over plain HTTP: send it by hand, as a browser would over HTTPS.
        cookie = csrf_cookie.split(";", 1)[0]
        signed = await http.post(
            "/login",
            data={"name": "sam", "password": PASSWORD, "csrftoken": csrf_of(page.text)},
            headers={"cookie": cookie},
        )
        session = next(c for c in signed.headers.get_list("set-cookie") if c.startswith("kindly_console="))
        flags = [flag.strip().lower() for flag in session.split(";")[1:]]
        assert {"httponly", "samesite=strict", "path=/console", "secure"} <= set(flags)
        assert "sam" not in session.split(";")[0], "the cookie carries a random token, not the user"


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("ana", "/console/queue"),
        ("sol", "/console/cases"),
        ("sam", "/console/dashboard"),
        ("ada", "/console/dashboard"),
        ("cai", "/console/audit"),
    ],
)
async def test_each_role_starts_on_its_own_page(site: Site, name: str, home: str) -> None:
    async with site.browser() as http:
        assert location(await login(http, name)) == home
        assert location(await http.get("/")) == home


async def test_a_wrong_password_is_told_without_saying_which_part(site: Site) -> None:
    async with site.browser() as http:
        for name in ("sam", "nobody"):
            refused = await login(http, name, "not the password")
            assert refused.status_code == 401
            assert "Wrong name or password." in refused.text
            assert f'value="{name}"' in refused.text and "not the password" not in refused.text
        assert urlsplit(location(await http.get("/audit"))).path == "/console/login"


async def test_five_failures_lock_the_user_even_against_the_right_password(site: Site) -> None:
    async with site.browser() as http:
        answers = [await login(http, "sam", f"wrong guess {n}") for n in range(MAX_FAILED_LOGINS)]
        assert all(answer.status_code == 401 for answer in answers)
        assert "Wrong name or password." in answers[0].text
        assert "locked until" in answers[-1].text
        right = await login(http, "sam", PASSWORD)
        assert right.status_code == 401 and "locked until" in right.text
        assert urlsplit(location(await http.get("/audit"))).path == "/console/login"


@pytest.mark.parametrize("target", ["https://example.com/", "//example.com/x", "/docs", "/console\\..\\docs"])
async def test_next_never_leads_off_the_console(site: Site, target: str) -> None:
    async with site.browser() as http:
        assert location(await login(http, "sam", next=target)) == "/console/dashboard"


async def test_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    async with signed_in(site, "sam") as http:
        refused = await http.post("/logout", data={})
        assert refused.status_code == 403
        forged = await http.post("/logout", data={"csrftoken": "forged"})
        assert forged.status_code == 403
        assert (await http.get("/audit")).status_code == 200, "the session is still there: nothing changed"
    async with site.browser() as cookieless:
        blind = await cookieless.post("/login", data={"name": "sam", "password": PASSWORD})
        assert blind.status_code == 403, "a login form posted from elsewhere signs nobody in"
        assert "kindly_console" not in blind.headers.get("set-cookie", "")


async def test_a_role_without_the_page_gets_a_page_saying_so(site: Site) -> None:
    async with signed_in(site, "ana") as http:
        refused = await http.get("/audit")
        assert refused.status_code == 403
        assert "does not allow" in refused.text and "Agent" in refused.text
        nav = refused.text.split('<nav class="site-nav"', 1)[1].split("</nav>", 1)[0]
        assert "/console/queue" in nav and "/console/accounts" in nav
        assert "/console/audit" not in nav and "/console/dashboard" not in nav


async def test_the_json_api_is_untouched_by_the_console(site: Site) -> None:
    async with site.browser() as http:
        await http.get("/login")  # the browser now holds the console's cookies...
        async with httpx.AsyncClient(base_url=site.base, timeout=60, cookies=http.cookies) as api:
            # ... and still reaches the API as before: refused for its body (422), not for CSRF (403).
            answer = await api.post("/accounts", json={"account_id": "x"}, headers=AUTH)
            assert answer.status_code == 422, answer.text
            assert "set-cookie" not in answer.headers
            assert (await api.get("/accounts", headers={})).status_code == 401


async def test_an_idle_session_ends_on_the_server(env: WorkflowEnvironment, settings: Settings) -> None:
    async with (
        console_site(env.client, settings, console_idle_minutes=0.001) as served,
        signed_in(served, "sam") as http,
    ):
        ended = await eventually(lambda: http.get("/audit"), lambda answer: answer.status_code == 303)
        assert urlsplit(location(ended)).path == "/console/login"


async def test_without_a_secret_one_is_made_and_the_api_says_so(
    env: WorkflowEnvironment, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with console_site(env.client, settings, console_session_secret=None) as served:
        assert "console sessions end when the API restarts" in caplog.text
        async with signed_in(served, "sam") as http:
            assert (await http.get("/audit")).status_code == 200
