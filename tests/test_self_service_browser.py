"""The customer's whole loop on a phone, in a real browser (Playwright driving Debian's chromium): a
reminder goes out at once through the SMS sandbox served as the worker's gateway, the customer opens the
sandbox's inbox, follows the link in the reminder to the page the API serves under ``/p`` (the
``public_base_url`` the link is made of), chooses an instalment plan, sees its schedule, confirms it, and
the account holds the plan. Screenshots of the page as the link opens it, of the schedule and of the
confirmation go to the temporary directory (``SHOTS``), to be looked at."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import TimelineKind
from kindly.domain.masking import mask_reference
from kindly.programs.api import create_app
from kindly.programs.operations import account_status, account_timeline
from kindly.programs.sandbox import SandboxSettings, create_sandbox_app
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from kindly.store import make_engine
from tests.asgi_server import serving
from tests.conftest import eventually, needs_chromium
from tests.fault_helpers import zone_at_local_hour
from tests.lifecycle_helpers import make_account
from tests.test_api import WEBHOOK_SECRET, api_settings

pytestmark = needs_chromium

NAME, PHONE, DIGITS = "Wang Xiaoming", "+8613800138000", "13800138000"
SHOTS = Path(tempfile.gettempdir()) / "kindly-self-service-browser"
"""Where the screenshots go: outside the repository, overwritten by each run."""


@pytest.fixture
def api_socket() -> Iterator[socket.socket]:
    """The API's listening address, taken before anything is configured: the worker's settings name it
    (``public_base_url``, what the links in the reminders are made of) and the sandbox posts its receipts
    and replies to it, all before the API itself can be built over the dev server's client."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


def base_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@pytest.fixture
async def sandbox(api_socket: socket.socket) -> AsyncIterator[str]:
    """The SMS sandbox on 127.0.0.1, wired to the API as ``make run`` wires it; its base URL."""
    api = base_of(api_socket)
    wired = SandboxSettings(
        inbound_url=f"{api}/webhooks/sms",
        receipts_url=f"{api}/webhooks/receipts",
        webhook_secret=SecretStr(WEBHOOK_SECRET),
    )
    async with serving(create_sandbox_app(wired)) as url:
        yield url


@pytest.fixture
def settings(settings: Settings, sandbox: str, api_socket: socket.socket) -> Settings:
    """The worker sends through the sandbox (``sms_provider="webhook"``, as under ``make run``), and its
    links lead to the API served on ``api_socket``."""
    return settings.model_copy(
        update={
            "sms_provider": "webhook",
            "sms_webhook_url": f"{sandbox}/sms",
            "public_base_url": base_of(api_socket),
        }
    )


@dataclass
class Loop:
    env: WorkflowEnvironment
    settings: Settings
    sandbox: str
    api: str
    browser: Browser


@pytest.fixture
async def loop(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    sandbox: str,
    api_socket: socket.socket,
    browser: Browser,
) -> AsyncIterator[Loop]:
    """The API (with the customer's page under ``/p``) served on ``api_socket`` over the dev server with its
    worker, sharing the worker's database, where the links are kept."""
    engine = make_engine(settings.database_url)
    app = create_app(
        dev_env.client,
        settings,
        api_settings(
            self_service_cookie_secure=False,  # plain HTTP here, as under ``make run``
            self_service_secret="self-service-secret-of-more-than-32-characters",
            max_body_bytes=64 * 1024,
        ),
        engine,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[api_socket]))

    async def started() -> bool:
        if task.done():
            task.result()  # raises why it stopped
        return bool(server.started)

    try:
        await eventually(started, bool)
        yield Loop(dev_env, settings, sandbox, base_of(api_socket), browser)
    finally:
        server.should_exit = True
        await task
        engine.dispose()


async def sandbox_messages(loop: Loop, account_id: str) -> list[dict[str, Any]]:
    """The messages the sandbox holds for the account."""
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{loop.sandbox}/api/messages", params={"phone": PHONE})
    return [message for message in answer.json() if message["account_id"] == account_id]


async def fits_the_phone(page: Page) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px on the phone"


def written(day: date) -> str:
    """A date as the page writes it in en-US."""
    return f"{day:%b} {day.day}, {day.year}"


async def schedule_rows(page: Page) -> list[list[str]]:
    rows = page.locator("table.schedule tbody tr")
    return [[cell.strip() for cell in await row.locator("td").all_inner_texts()] for row in await rows.all()]


async def test_on_a_phone_the_customer_taps_the_reminders_link_and_chooses_a_plan(loop: Loop) -> None:
    # 1. An overdue account whose customer's clock reads 14:00 (inside the send window, past its spread):
    # its first reminder goes at once, through the sandbox. In English: the page speaks the account's
    # language, the one its reminders come in.
    now = datetime.now(UTC)
    zone = zone_at_local_hour(now, 14)
    today = now.astimezone(ZoneInfo(zone)).date()
    account = make_account(
        today - timedelta(days=5), timezone=zone, locale="en-US", phone=PHONE, amount_due=Decimal("1500.00")
    )
    await start_account(loop.env.client, account, task_queue=loop.settings.task_queue)
    sent = await eventually(lambda: sandbox_messages(loop, account.account_id), bool, attempts=1200)
    assert len(sent) == 1 and sent[0]["direction"] == "out", sent
    assert f"{loop.api}/p/" in sent[0]["body"], "the reminder's link leads to the API served here"

    # 2. The customer's inbox in the sandbox, on a phone, and a click on the reminder's link.
    context = await loop.browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, locale="en-US"
    )
    page = await context.new_page()
    try:
        await page.goto(f"{loop.sandbox}/inbox/{quote(PHONE, safe='+')}")
        reminder = page.locator("div.out", has_text=f"account {account.account_id}")
        link = reminder.locator('a[href*="/p/"]')
        assert await link.count() == 1
        href = await link.get_attribute("href")
        assert href is not None and href.startswith(f"{loop.api}/p/") and href in sent[0]["body"]
        await link.click()
        await page.wait_for_url(href)

        # 3. The customer's page: the masked reference and the amount, nothing personal.
        due = page.locator("section.due")
        assert await due.locator(".ref").inner_text() == mask_reference(account.account_id)
        assert "CNY 1,500.00" in await due.inner_text()
        html = await page.content()
        assert NAME not in html and DIGITS not in html and account.account_id not in html
        await fits_the_phone(page)
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SHOTS / "0-page.png", full_page=True)

        # The first plan offered, its first payment on a day within the limit, typed into the date field.
        plan = page.locator("form#plan")
        first_option = plan.locator('input[name="instalments"]').first
        await first_option.check()
        count = int(await first_option.get_attribute("value") or "0")
        assert count == 3, "plans of 3 and 6 are offered; 3 comes first"
        field = plan.get_by_label("First payment on")
        earliest = date.fromisoformat(await field.get_attribute("min") or "")
        latest = date.fromisoformat(await field.get_attribute("max") or "")
        assert (earliest, latest) == (today, today + timedelta(days=14)), "the customer's own dates"
        first = earliest + timedelta(days=3)
        await field.fill(first.isoformat())
        await plan.get_by_role("button", name="See the payment dates").click()
        await page.wait_for_url(lambda url: url.endswith("/plan"))

        # The schedule, before anything reaches the account.
        assert await page.locator("h1").inner_text() == "Check your plan"
        dues = [first + timedelta(days=30 * n) for n in range(count)]
        assert await schedule_rows(page) == [
            [str(n + 1), written(day), "CNY 500.00"] for n, day in enumerate(dues)
        ]
        assert (await account_status(loop.env.client, account.account_id)).plan is None
        await fits_the_phone(page)
        await page.screenshot(path=SHOTS / "1-schedule.png", full_page=True)

        confirm = page.get_by_role("button", name="Confirm this plan")
        assert (await confirm.bounding_box() or {"height": 0})["height"] >= 48, "a thumb-sized button"
        await confirm.click()
        await page.wait_for_url(lambda url: url.endswith("/done/plan"))
        assert await page.locator("h1").inner_text() == "Your plan is set"
        assert "You will pay in 3 payments:" in await page.locator("main").inner_text()
        assert await schedule_rows(page) == [
            [str(n + 1), written(day), "CNY 500.00"] for n, day in enumerate(dues)
        ]
        assert DIGITS not in await page.content()
        await fits_the_phone(page)
        await page.screenshot(path=SHOTS / "2-confirmed.png", full_page=True)
    finally:
        await context.close()

    # 4. The account holds the plan, and its timeline says the customer chose it from the link.
    status = await account_status(loop.env.client, account.account_id)
    assert status.plan is not None
    assert [(each.due, each.amount) for each in status.plan.instalments] == [
        (day, Decimal("500.00")) for day in dues
    ]
    chosen = [
        entry.detail
        for entry in await account_timeline(loop.env.client, account.account_id)
        if entry.kind == TimelineKind.SELF_SERVICE
    ]
    touchpoint = sent[0]["idempotency_key"].rsplit("/tp-", 1)[1]  # the reminder that carried the link
    assert chosen == [
        f"chose an instalment plan: 3 instalments of 500.00 CNY from {dues[0]} to {dues[-1]} "
        f"(from the link of touchpoint {touchpoint})"
    ]

    # The sandbox took the reminder's delivery receipt to Kindly, which matched it to the account.
    receipted = await eventually(
        lambda: sandbox_messages(loop, account.account_id),
        lambda messages: messages[0]["kindly_answer"] == "recorded",
    )
    assert receipted[0]["status"] == "delivered"
