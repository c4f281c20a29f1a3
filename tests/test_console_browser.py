"""The console in a real browser: Playwright from PyPI driving Debian's chromium (never a downloaded
browser), against the API on a real server over the dev server with a worker. What people do with it:
log in, act on an account from its page with a confirmation, and what each role is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.async_api import Browser, Page
from temporalio.testing import WorkflowEnvironment

from kindly.programs.operations import account_status, account_timeline
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from tests.conftest import eventually, needs_chromium
from tests.lifecycle_helpers import local_today, make_account
from tests.test_console_auth import PASSWORD, Site, console_site

pytestmark = needs_chromium
NAME, PHONE = "Wang Xiaoming", "13800138000"


@dataclass
class Floor:
    site: Site
    env: WorkflowEnvironment
    settings: Settings
    browser: Browser

    async def open_account(self) -> str:
        today = await local_today(self.env)
        account = make_account(today + timedelta(days=30))
        await start_account(self.env.client, account, task_queue=self.settings.task_queue)
        await eventually(lambda: account_timeline(self.env.client, account.account_id), bool)
        return account.account_id

    async def signed_in(self, name: str) -> Page:
        """A new browser window signed in as ``name``, at 1366×768."""
        context = await self.browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-US")
        page = await context.new_page()
        await page.goto(f"{self.site.base}/console/login")
        await page.get_by_label("User name").fill(name)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(lambda url: "/console/login" not in url)
        return page


@pytest.fixture
async def floor(dev_env: WorkflowEnvironment, settings: Settings, browser: Browser) -> AsyncIterator[Floor]:
    async with console_site(dev_env.client, settings) as site:
        yield Floor(site, dev_env, settings, browser)


async def post_form(page: Page, action: str, fields: dict[str, str]) -> int:
    """Submit a form the page does not offer, as a hand-made request from the same browser would: the
    status of the page it leads to."""
    async with page.expect_navigation() as navigation:
        await page.evaluate(
            """([action, fields]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                for (const [name, value] of Object.entries(fields)) {
                    const input = document.createElement("input");
                    input.type = "hidden"; input.name = name; input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [action, fields],
        )
    response = await navigation.value
    assert response is not None
    return response.status


async def csrf_token(page: Page) -> str:
    token = await page.locator('input[name="csrftoken"]').first.get_attribute("value")
    assert token
    return token


async def test_a_person_logs_in_and_out(floor: Floor) -> None:
    page = await floor.signed_in("sam")
    assert page.url.endswith("/console/dashboard")
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(lambda url: "/console/login" in url)
    await page.goto(f"{floor.site.base}/console/dashboard")
    assert "/console/login" in page.url, "the session ended with the logout"
    await page.context.close()


async def test_a_supervisor_pauses_an_account_from_its_page_and_the_timeline_shows_it(floor: Floor) -> None:
    account_id = await floor.open_account()
    page = await floor.signed_in("sam")
    await page.goto(f"{floor.site.base}/console/accounts/{account_id}")
    pause = page.locator(f'form[action$="/accounts/{account_id}/actions/pause"]')
    await pause.get_by_label("Reason").fill("customer in hospital")
    await pause.get_by_role("button").click()
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url(lambda url: "flash=done_pause" in url)
    timeline = page.locator('section[aria-labelledby="timeline-heading"]')
    assert "customer in hospital" in await timeline.inner_text()
    assert (await account_status(floor.env.client, account_id)).paused
    html = await page.content()
    assert NAME not in html and PHONE not in html
    await page.context.close()


async def test_an_agent_cannot_settle(floor: Floor) -> None:
    account_id = await floor.open_account()
    page = await floor.signed_in("ana")
    await page.goto(f"{floor.site.base}/console/accounts/{account_id}")
    assert await page.locator('form[action$="/actions/settle"]').count() == 0, "no settle form is offered"
    fields = {"csrftoken": await csrf_token(page), "amount": "100", "reference": "S-1", "confirmed": "yes"}
    status = await post_form(page, f"/console/accounts/{account_id}/actions/settle", fields)
    assert status == 403
    assert (await account_status(floor.env.client, account_id)).stage != "settled"
    await page.context.close()


async def test_a_post_without_its_csrf_token_is_refused(floor: Floor) -> None:
    account_id = await floor.open_account()
    page = await floor.signed_in("sam")
    await page.goto(f"{floor.site.base}/console/accounts/{account_id}")
    fields = {"reason": "no token", "confirmed": "yes"}
    assert await post_form(page, f"/console/accounts/{account_id}/actions/pause", fields) == 403
    assert not (await account_status(floor.env.client, account_id)).paused
    await page.context.close()


async def test_compliance_sees_the_account_but_cannot_act(floor: Floor) -> None:
    account_id = await floor.open_account()
    page = await floor.signed_in("cai")
    await page.goto(f"{floor.site.base}/console/accounts/{account_id}")
    assert await page.locator("#timeline-heading").count() == 1, "the account and its timeline are shown"
    assert await page.locator('form[action*="/actions/"]').count() == 0, "no action is offered"
    fields = {"csrftoken": await csrf_token(page), "reason": "look", "confirmed": "yes"}
    assert await post_form(page, f"/console/accounts/{account_id}/actions/pause", fields) == 403
    assert not (await account_status(floor.env.client, account_id)).paused
    await page.context.close()


async def test_the_console_works_from_the_keyboard(floor: Floor) -> None:
    """Sign in and reach a page with the keyboard alone: the login form takes focus first, Enter submits,
    and the skip link is the first stop on every page."""
    context = await floor.browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-US")
    page = await context.new_page()
    await page.goto(f"{floor.site.base}/console/login")
    # The name field takes the focus as the page loads: wait for it, then type.
    await page.wait_for_function("document.activeElement && document.activeElement.name === 'name'")
    await page.keyboard.type("sam")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(lambda url: url.endswith("/console/dashboard"))
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.className")
    assert "skip-link" in focused
    await page.keyboard.press("Enter")
    assert await page.evaluate("location.hash") == "#main"
    await context.close()


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (768, 1024)], ids=["laptop", "tablet"])
async def test_pages_fit_the_screen_without_sideways_scrolling(floor: Floor, width: int, height: int) -> None:
    account_id = await floor.open_account()
    page = await floor.signed_in("sam")
    await page.set_viewport_size({"width": width, "height": height})
    for path in ("/dashboard", "/accounts", f"/accounts/{account_id}", "/audit"):
        await page.goto(f"{floor.site.base}/console{path}")
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
    await page.context.close()
