"""The console's phone queue on the real dev server with a worker and the built-in work queues: accounts
that cannot get SMS escalate to a call task at once (their customers' clocks are set inside the calling
hours), agents see the queue without any number, claim a task, see the number only then and only
themselves, and record the call's outcome as an update the account takes or refuses. Every claim,
release and outcome, refused and forbidden ones too, leaves an audit row naming who acted. The last tests
do it in a real browser."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import CallOutcomeKind, Stage
from kindly.domain.masking import mask_reference
from kindly.domain.roles import Role
from kindly.keyring import load_keyring
from kindly.programs.console.audit_query import ACCEPTED, FORBIDDEN, REFUSED
from kindly.programs.console.i18n import LOCALES, Catalogs
from kindly.programs.console.queue import outcome_words, why_words
from kindly.programs.operations import account_status, account_timeline
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from kindly.store import AuditEntry, AuditLog, WorkQueue
from kindly.store.audit import CONSOLE_ACTION
from kindly.store.call_tasks import CallTask, NewCallTask
from kindly.store.phones import PhoneBook
from kindly.store.users import UserStore
from tests.conftest import TEST_POLICIES, eventually, needs_chromium
from tests.fault_helpers import zone_at_local_hour
from tests.lifecycle_helpers import make_account
from tests.test_console_auth import PASSWORD, Site, console_site, csrf_of, location, signed_in

PHONE = "+8613800138000"
DIGITS = "13800138000"
NAME = "Wang Xiaoming"
POLICIES = {
    **TEST_POLICIES,
    "calls": {"holiday_calendar": None},
    "calls_us": {"regime": "us", "holiday_calendar": None},
}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The built-in work queues (no hand-off URLs), and segments with no holidays in either regime."""
    policy_file = tmp_path / "queue_policies.json"
    policy_file.write_text(json.dumps(POLICIES))
    return settings.model_copy(
        update={"phone_webhook_url": None, "specialist_webhook_url": None, "policy_file": policy_file}
    )


@dataclass
class Floor:
    site: Site
    env: WorkflowEnvironment
    settings: Settings
    queue: WorkQueue

    async def escalated(self, segment: str = "calls", amount: str = "1500.00", **overrides: Any) -> CallTask:
        """A running account in the phone stage with its first call task: overdue, its number opted out
        of SMS earlier, its customer's clock at midday (inside the calling hours)."""
        now = datetime.now(UTC)
        zone = zone_at_local_hour(now, 12)
        today = now.astimezone(ZoneInfo(zone)).date()
        account = make_account(
            today - timedelta(days=10),
            timezone=zone,
            segment=segment,
            amount_due=Decimal(amount),
            **overrides,
        )
        PhoneBook(self.site.engine, load_keyring(self.settings)).record_opt_out(account.phone, "LN-EARLIER")
        await start_account(self.env.client, account, task_queue=self.settings.task_queue)
        task = await eventually(
            lambda: self.task_of(account.account_id), lambda task: task is not None and task.attempt == 1
        )
        assert task is not None
        return task

    async def task_of(self, account_id: str) -> CallTask | None:
        found = [
            task for task in self.queue.open_tasks(datetime.now(UTC), 100) if task.account_id == account_id
        ]
        return found[0] if found else None

    def console_rows(self, account_id: str) -> list[AuditEntry]:
        return [row for row in AuditLog(self.site.engine).audit_for(account_id) if row.kind == CONSOLE_ACTION]


@pytest.fixture
async def floor(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Floor]:
    async with console_site(dev_env.client, settings) as served:
        UserStore(served.engine).add("bo", Role.AGENT, PASSWORD)
        yield Floor(served, dev_env, settings, WorkQueue(served.engine, load_keyring(settings)))


def no_number(html: str) -> None:
    assert DIGITS not in html and NAME not in html, "the page shows the customer's number or name"


async def queue_listing(http: httpx.AsyncClient, account_id: str) -> str:
    """The queue page once it lists the account's task (the run publishes its phone stage moments after
    it adds the task); the row of that task."""
    ref = mask_reference(account_id)
    page = await eventually(lambda: http.get("/queue"), lambda page: ref in page.text)
    no_number(page.text)
    return row_of(page.text, ref)


def row_of(html: str, ref: str) -> str:
    rows = [row for row in html.split("<tr") if f'<span class="ref">{ref}</span>' in row]
    assert len(rows) == 1, html
    return rows[0].split("</tr>", 1)[0]


async def post(http: httpx.AsyncClient, page_path: str, path: str, **values: str) -> httpx.Response:
    """Post a form as ``page_path`` holds it (with its CSRF token)."""
    page = await http.get(page_path)
    return await http.post(path, data={"csrftoken": csrf_of(page.text), **values})


async def test_an_agent_claims_sees_the_number_records_no_answer_and_the_next_attempt_comes(
    floor: Floor,
) -> None:
    task = await floor.escalated()
    ref = mask_reference(task.account_id)
    async with signed_in(floor.site, "ana") as http:
        row = await queue_listing(http, task.account_id)
        assert "1,500.00 CNY" in row and ">10<" in row, row
        assert "Attempts today: 0 of 6" in row and "Connected today: 0 of 3" in row
        assert f"/queue/tasks/{task.id}/claim" in row and "Offered" in row
        assert task.account_id not in row, "the account is named by its masked reference only"

        claimed = await post(http, "/queue", f"/queue/tasks/{task.id}/claim")
        assert location(claimed) == f"/console/queue/tasks/{task.id}"
        page = await http.get(f"/queue/tasks/{task.id}")
        assert page.status_code == 200 and f'href="tel:{PHONE}"' in page.text
        assert NAME not in page.text and task.account_id not in page.text
        assert "1,500.00 CNY" in page.text and ref in page.text
        script = page.text.split('class="script" lang="zh-CN"', 1)[1].split("</section>", 1)[0]
        assert "不得威胁" in script and ref in script and "400-800-1234" in script, (
            "in the customer's language"
        )
        pinned = (await http.get("/queue")).text
        assert "Your task" in pinned and f'href="/console/queue/tasks/{task.id}"' in pinned
        no_number(pinned)

        answered = await post(
            http, f"/queue/tasks/{task.id}", f"/queue/tasks/{task.id}/outcome", outcome="no_answer"
        )
        target = location(answered)
        assert target.startswith("/console/queue?done=no_answer")
        shown = await http.get(target.removeprefix("/console"))
        assert f"Recorded “No answer” for account {ref}." in shown.text
        assert "at the stage “Phone”; next: call task" in shown.text
        no_number(shown.text)

        second = await eventually(
            lambda: floor.task_of(task.account_id), lambda found: found is not None and found.attempt == 2
        )
        assert second is not None and second.id != task.id
        row = await eventually(
            lambda: queue_listing(http, task.account_id), lambda row: f"/queue/tasks/{second.id}/" in row
        )
        assert re.search(r'<td class="num">2</td>', row) and "Offered" in row, row
        first = floor.queue.get(task.id or 0)
        assert first is not None and first.closed_at is not None, "the first attempt's task is closed"

    rows = floor.console_rows(task.account_id)
    assert [(row.actor, row.outcome, row.detail) for row in rows] == [
        ("ana", ACCEPTED, f"call task {task.id} attempt 1: claim"),
        ("ana", ACCEPTED, f"call task {task.id} attempt 1: outcome no_answer"),
    ]
    assert all(DIGITS not in row.detail for row in rows)


async def test_claims_are_exclusive_and_the_number_stays_with_the_holder(floor: Floor) -> None:
    task = await floor.escalated()
    async with signed_in(floor.site, "ana") as ana, signed_in(floor.site, "bo") as bo:
        await queue_listing(ana, task.account_id)
        location(await post(ana, "/queue", f"/queue/tasks/{task.id}/claim"))

        taken = await post(bo, "/queue", f"/queue/tasks/{task.id}/claim")
        assert taken.status_code == 409 and "This task is claimed by ana until" in taken.text
        row = row_of(taken.text, mask_reference(task.account_id))
        assert "Claimed by ana" in row and "/claim" not in row
        not_hers = await bo.get(f"/queue/tasks/{task.id}")
        assert not_hers.status_code == 403 and "Only the agent who claimed this task" in not_hers.text
        refused = await post(bo, "/queue", f"/queue/tasks/{task.id}/outcome", outcome="reached")
        assert refused.status_code == 409 and "you do not hold task" in refused.text
        released = await post(bo, "/queue", f"/queue/tasks/{task.id}/release")
        assert released.status_code == 409 and "You do not hold this task" in released.text
        for page in (taken, not_hers, refused, released):
            no_number(page.text)

        renewed = await post(ana, f"/queue/tasks/{task.id}", f"/queue/tasks/{task.id}/renew")
        assert location(renewed) == f"/console/queue/tasks/{task.id}?flash=lease_renewed"
        page = await ana.get(location(renewed).removeprefix("/console"))
        assert "Your claim on the task is renewed." in page.text and PHONE in page.text

    async with signed_in(floor.site, "sam") as sam:
        supervised = await sam.get(f"/queue/tasks/{task.id}")
        assert supervised.status_code == 200 and "by ana, until" in supervised.text
        assert "shown only to the agent who holds the task" in supervised.text
        assert "/outcome" not in supervised.text and "/release" not in supervised.text
        no_number(supervised.text)
        no_number((await sam.get("/queue")).text)
        no_number((await sam.get(f"/accounts/{task.account_id}")).text)

    async with signed_in(floor.site, "cai") as cai:
        assert (await cai.get("/queue")).status_code == 403
        assert (await cai.get(f"/queue/tasks/{task.id}")).status_code == 403
        token = csrf_of((await cai.get("/audit")).text)
        forbidden = await cai.post(f"/queue/tasks/{task.id}/claim", data={"csrftoken": token})
        assert forbidden.status_code == 403
        no_number(forbidden.text)

    rows = [
        (row.actor, row.outcome, row.detail.split(": ", 1)[1]) for row in floor.console_rows(task.account_id)
    ]
    assert rows == [
        ("ana", ACCEPTED, "claim"),
        ("bo", REFUSED, "claim"),
        ("bo", REFUSED, "outcome reached"),
        ("bo", REFUSED, "release"),
        ("ana", ACCEPTED, "renew"),
        ("cai", FORBIDDEN, "claim"),
    ]
    held = floor.queue.get(task.id or 0)
    assert held is not None and held.claimed_by == "ana" and held.closed_at is None


async def test_a_refused_outcome_keeps_the_task_and_a_call_back_closes_it(floor: Floor) -> None:
    task = await floor.escalated()
    zone = ZoneInfo(task.timezone or "UTC")
    async with signed_in(floor.site, "ana") as http:
        await queue_listing(http, task.account_id)
        location(await post(http, "/queue", f"/queue/tasks/{task.id}/claim"))
        path = f"/queue/tasks/{task.id}"

        past = await post(http, path, f"{path}/outcome", outcome="promise_to_pay", promise_date="2020-01-02")
        assert past.status_code == 422 and "is in the past" in past.text
        field = re.search(r'<input id="promise_date"[^>]*>', past.text)
        assert field and 'value="2020-01-02"' in field.group(0) and 'aria-invalid="true"' in field.group(0)
        assert "The task is still yours" in past.text and PHONE in past.text
        assert floor.queue.held_by("ana", datetime.now(UTC)) is not None

        unreadable = await post(http, path, f"{path}/outcome", outcome="call_back", call_back_at="tomorrow")
        assert unreadable.status_code == 422 and "not a date and time" in unreadable.text

        local_tomorrow: date = datetime.now(zone).date() + timedelta(days=1)
        call_back = datetime.combine(local_tomorrow, time(15, 30), zone)
        done = await post(
            http,
            path,
            f"{path}/outcome",
            outcome="call_back",
            call_back_at=call_back.strftime("%Y-%m-%dT%H:%M"),
        )
        assert location(done).startswith("/console/queue?done=call_back")
        shown = await http.get(location(done).removeprefix("/console"))
        assert "Recorded “Call back”" in shown.text and "next: call task, at " in shown.text
        assert call_back.strftime("%Y-%m-%d 15:30") in shown.text
        assert "Your task" not in shown.text
        gone = await http.get(path)
        assert gone.status_code == 403 and PHONE not in gone.text, "a closed task shows no number"

    closed = floor.queue.get(task.id or 0)
    assert closed is not None and closed.closed_at is not None and closed.outcome == "call_back"
    status = await account_status(floor.env.client, task.account_id)
    assert status.stage is Stage.PHONE and status.next_touchpoint_at == call_back
    entries = await account_timeline(floor.env.client, task.account_id)
    assert any("customer asked to be called back at" in entry.detail for entry in entries)
    outcomes = [(row.outcome, row.detail.split(": ", 1)[1]) for row in floor.console_rows(task.account_id)]
    assert outcomes == [
        (ACCEPTED, "claim"),
        (REFUSED, "outcome promise_to_pay promise_date='2020-01-02'"),
        (REFUSED, "outcome call_back call_back_at='tomorrow'"),
        (ACCEPTED, f"outcome call_back call_back_at='{call_back:%Y-%m-%dT%H:%M}'"),
    ]


async def test_the_queue_shows_each_regimes_limits_and_why_a_task_is_not_offered(floor: Floor) -> None:
    us = await floor.escalated("calls_us", amount="900.00")
    cn = await floor.escalated("calls", amount="2500.00")
    async with signed_in(floor.site, "ana") as http:
        us_row = await queue_listing(http, us.account_id)
        assert "Rules: us" in us_row and "Attempts in 7 days: 0 of 7" in us_row and "today" not in us_row
        page = (await http.get("/queue")).text
        assert page.index(mask_reference(cn.account_id)) < page.index(mask_reference(us.account_id)), (
            "the larger amount first"
        )

        # The account's task replaced by one whose calling hours are over for the day: listed, not offered.
        now = datetime.now(UTC)
        local = now.astimezone(ZoneInfo(cn.timezone or "UTC"))
        closed_hours = _closed_window(local.time())
        replaced = floor.queue.add(
            _copy(cn, "later", window=closed_hours, offered_until=now + timedelta(hours=1)), now
        )
        row = await eventually(lambda: queue_listing(http, cn.account_id), lambda row: "Not now" in row)
        assert "Not now" in row and "outside the customer&#39;s calling hours" in row and "/claim" not in row
        refused = await post(http, "/queue", f"/queue/tasks/{replaced.id}/claim")
        assert refused.status_code == 409 and "outside_window" in refused.text


def _closed_window(now: time) -> tuple[time, time]:
    """A calling window of an hour that does not hold ``now``."""
    start = (datetime.combine(date.today(), now) + timedelta(hours=2)).time().replace(minute=0, second=0)
    end = (datetime.combine(date.today(), start) + timedelta(hours=1)).time()
    return (start, end) if start < end else (time(1), time(2))


def _copy(task: CallTask, key: str, *, window: tuple[time, time], offered_until: datetime) -> NewCallTask:
    fields: dict[str, Any] = {
        name: getattr(task, name)
        for name in (
            "account_id",
            "attempt",
            "reason",
            "currency",
            "due_date",
            "timezone",
            "locale",
            "regime",
        )
    }
    return NewCallTask(
        idempotency_key=f"{task.idempotency_key}/{key}",
        amount_due=Decimal(task.amount_due),
        phone=PHONE,
        window_start=window[0],
        window_end=window[1],
        offered_until=offered_until,
        segment=task.segment,
        promise_broken=task.promise_broken,
        **fields,
    )


def test_every_outcome_and_every_reason_not_to_call_has_words_in_both_languages() -> None:
    catalogs = Catalogs.load()
    for locale in LOCALES:
        t = catalogs.translator(locale)
        outcomes, reasons = outcome_words(t), why_words(t)
        assert set(outcomes) == set(CallOutcomeKind)
        assert set(reasons) == {"call_cap", "after_conversation", "outside_window"}
        words = [*outcomes.values(), *reasons.values()]
        assert not [word for word in words if word.startswith(("outcome.", "queue.why."))], locale


# --- in a real browser: Playwright driving Debian's chromium ------------------------------------------


async def browser_signed_in(floor: Floor, browser: Browser, name: str) -> Page:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-US")
    page = await context.new_page()
    await page.goto(f"{floor.site.base}/console/login")
    await page.get_by_label("User name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: url.endswith("/console/queue"))
    return page


async def listed(page: Page, floor: Floor, reference: str) -> None:
    """Reload the queue until it lists the task (its account publishes its stage moments after)."""

    async def shown() -> bool:
        await page.goto(f"{floor.site.base}/console/queue")
        return await page.get_by_role("button", name=f"Claim the task of account {reference}").count() == 1

    await eventually(shown, bool, attempts=200)


@pytest.fixture
async def agents(floor: Floor, browser: Browser) -> AsyncIterator[tuple[Page, Page]]:
    ana, bo = await browser_signed_in(floor, browser, "ana"), await browser_signed_in(floor, browser, "bo")
    yield ana, bo
    for page in (ana, bo):
        await page.context.close()


@needs_chromium
async def test_in_a_browser_an_agent_claims_records_no_answer_and_sees_attempt_2(
    floor: Floor, agents: tuple[Page, Page]
) -> None:
    ana, _ = agents
    task = await floor.escalated()
    reference = mask_reference(task.account_id)
    await listed(ana, floor, reference)
    assert DIGITS not in await ana.content(), "the queue shows no number"
    await ana.get_by_role("button", name=f"Claim the task of account {reference}").click()
    await ana.wait_for_url(lambda url: f"/console/queue/tasks/{task.id}" in url)
    assert DIGITS in await ana.content(), "the agent holding the task sees the number"
    await ana.get_by_role("button", name="No answer").click()
    await ana.wait_for_url(lambda url: "/console/queue" in url and "/tasks/" not in url)
    assert "No answer" in await ana.locator("main").inner_text()
    row = ana.locator("tr", has=ana.locator(".ref", has_text=reference))

    async def attempt() -> str:
        await ana.reload()
        return await row.locator("td").nth(3).inner_text() if await row.count() else ""

    assert await eventually(attempt, lambda shown: shown == "2", attempts=200) == "2"
    assert DIGITS not in await ana.content()


@needs_chromium
async def test_in_a_browser_two_agents_cannot_claim_the_same_task(
    floor: Floor, agents: tuple[Page, Page]
) -> None:
    ana, bo = agents
    task = await floor.escalated()
    reference = mask_reference(task.account_id)
    await listed(ana, floor, reference)
    await listed(bo, floor, reference)
    await ana.get_by_role("button", name=f"Claim the task of account {reference}").click()
    await ana.wait_for_url(lambda url: f"/console/queue/tasks/{task.id}" in url)
    async with bo.expect_navigation() as navigation:
        await bo.get_by_role("button", name=f"Claim the task of account {reference}").click()
    response = await navigation.value
    assert response is not None and response.status == 409
    assert "claimed by ana" in await bo.locator("main").inner_text()
    assert DIGITS not in await bo.content()
    forbidden = await bo.goto(f"{floor.site.base}/console/queue/tasks/{task.id}")
    assert forbidden is not None and forbidden.status == 403 and DIGITS not in await bo.content()
