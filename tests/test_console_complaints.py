"""Complaints on the console: who may record, acknowledge and resolve one; each action confirmed first,
sent to the account as an update, refused with the account's reason and the values typed, forbidden before
anything reaches the account, and written to the audit log naming who acted; the specialists' list of open
complaints by deadline, with the ones past a deadline marked; the dashboard's counts; a case note that
records a complaint. On the real dev server with a worker, whose complaint store the list reads, and once
in a real browser."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
from playwright.async_api import Browser, Page

from kindly.domain.complaints import Complaint, ComplaintChannel, ComplaintOutcome
from kindly.domain.contract import AccountStatus, Stage
from kindly.domain.masking import mask_reference
from kindly.domain.roles import Permission, Role, may
from kindly.programs.console.actions import ACTIONS, complaint_actions, describe, offered
from kindly.programs.console.audit_query import ACCEPTED, FORBIDDEN, REFUSED
from kindly.programs.console.complaints import (
    DEADLINE_STATES,
    ESCALATED,
    LATE,
    MET,
    OVERDUE,
    complaint_from_note,
    complaint_words,
    deadline_state,
)
from kindly.programs.console.i18n import LOCALES, Catalogs
from kindly.programs.operations import account_status, account_timeline
from kindly.programs.temporal import start_account
from kindly.store.complaints import ComplaintStore
from tests.conftest import eventually, needs_chromium
from tests.lifecycle_helpers import make_account
from tests.test_console_accounts import NAME, act, no_personal_data
from tests.test_console_auth import PASSWORD, location, signed_in
from tests.test_console_cases import handed_over
from tests.test_console_queue import (  # noqa: F401  (fixtures)
    Floor,
    floor,
    post,
    settings,
)

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
ZONE = "Asia/Shanghai"


# --- the rules, without a server -----------------------------------------------------------------------


def test_agents_record_complaints_specialists_and_supervisors_answer_them_compliance_reads() -> None:
    opens = {role for role in Role if may(role, Permission.OPEN_COMPLAINT)}
    answers = {role for role in Role if may(role, Permission.COMPLAINTS)}
    assert opens == {Role.AGENT, Role.SPECIALIST, Role.SUPERVISOR, Role.ADMIN}
    assert answers == {Role.SPECIALIST, Role.SUPERVISOR, Role.ADMIN}


def test_each_deadline_is_met_late_due_overdue_or_escalated() -> None:
    deadline = NOW + timedelta(days=1)
    assert deadline_state(deadline, NOW, None, NOW) == MET
    assert deadline_state(deadline, deadline + timedelta(minutes=1), None, NOW) == LATE
    assert deadline_state(deadline, NOW, deadline, NOW) == LATE, "met after the account escalated it"
    assert deadline_state(deadline, None, None, NOW) == "due"
    assert deadline_state(deadline, None, None, deadline) == OVERDUE, "passed, not yet escalated"
    assert deadline_state(deadline, None, deadline, deadline + timedelta(hours=1)) == ESCALATED


def _complaint(**changes: object) -> Complaint:
    values: dict[str, object] = {
        "number": 1,
        "channel": ComplaintChannel.CONSOLE,
        "received_at": NOW,
        "acknowledge_by": NOW + timedelta(days=1),
        "resolve_by": NOW + timedelta(days=21),
    }
    return Complaint.model_validate(values | changes)


def _status(*complaints: Complaint, held: bool = False) -> AccountStatus:
    return AccountStatus(
        account_id="LN-UNIT-1",
        stage=Stage.PAUSED if held else Stage.OVERDUE,
        amount_due=Decimal("1500.00"),
        sms_sent=1,
        unanswered_sms=1,
        next_touchpoint_at=None,
        paused=False,
        complaints=list(complaints),
        contact_held_for_complaint=held,
    )


def test_the_page_offers_what_the_role_may_do_and_the_account_can_take() -> None:
    open_one = _complaint()
    acknowledged = _complaint(acknowledged_at=NOW)
    resolved = _complaint(acknowledged_at=NOW, resolved_at=NOW, outcome=ComplaintOutcome.UPHELD)

    def names(role: Role, status: AccountStatus, ended: bool = False) -> list[str]:
        return sorted(complaint_actions(role, status, ended))

    assert names(Role.AGENT, _status()) == ["open_complaint"]
    assert names(Role.AGENT, _status(open_one, held=True)) == [], "an agent records, does not answer"
    assert names(Role.SPECIALIST, _status(open_one, held=True)) == [
        "acknowledge_complaint",
        "resolve_complaint",
    ]
    assert names(Role.SUPERVISOR, _status(acknowledged, held=True)) == ["resolve_complaint"]
    assert names(Role.SPECIALIST, _status(resolved, held=True)) == ["open_complaint"]
    assert names(Role.COMPLIANCE, _status(open_one, held=True)) == []
    assert names(Role.ADMIN, _status(), ended=True) == []

    account = [action.name for action in offered(Role.SPECIALIST, _status(resolved, held=True), False)]
    assert "resume" in account, "contact held after a resolution is resumed as a pause is"
    account = [action.name for action in offered(Role.SPECIALIST, _status(open_one, held=True), False)]
    assert "resume" not in account and not [name for name in account if "complaint" in name]
    paused = _status(open_one, held=True).model_copy(update={"paused": True})
    assert "resume" not in [action.name for action in offered(Role.SUPERVISOR, paused, False)], (
        "the account refuses a resume while a complaint is open"
    )


def test_a_case_note_is_the_complaint_note_only_when_the_contract_takes_it() -> None:
    plain = complaint_from_note("  Says the reminders came every day; wants them to stop.  ")
    assert plain.payload.note == "Says the reminders came every day; wants them to stop."
    assert plain.payload.channel is ComplaintChannel.CONSOLE and not plain.note_left_out
    assert plain.payload.received_at is None, "received as the account takes it"
    numbered = complaint_from_note("Called from 138 0013 8000 to complain.")
    assert numbered.payload.note is None and numbered.note_left_out
    long = complaint_from_note("x" * 501)
    assert long.payload.note is None and long.note_left_out


def test_the_audit_row_gives_a_note_with_personal_data_by_its_length_only() -> None:
    acknowledge = ACTIONS["acknowledge_complaint"]
    clean = describe(acknowledge, {"complaint": "1", "note": "Called back."})
    assert clean == "acknowledge_complaint complaint='1' note='Called back.'"
    withheld = describe(acknowledge, {"complaint": "1", "note": "ring 13800138000"})
    assert "13800138000" not in withheld and "note=<withheld: 16 characters" in withheld


def test_every_complaint_word_in_both_languages() -> None:
    catalogs = Catalogs.load()
    for locale in LOCALES:
        words = complaint_words(catalogs.translator(locale))
        assert set(words.channel) == set(ComplaintChannel) and set(words.outcome) == set(ComplaintOutcome)
        assert set(words.deadline) == set(DEADLINE_STATES)
        shown = [
            *words.channel.values(),
            *words.outcome.values(),
            *words.deadline.values(),
            *words.state.values(),
        ]
        assert not [word for word in shown if word.startswith("complaint.")], locale


# --- on the dev server ----------------------------------------------------------------------------------


async def open_account(floor: Floor) -> str:  # noqa: F811
    """A running account due in 30 days (the customer in Shanghai), planned and waiting."""
    today = datetime.now(ZoneInfo(ZONE)).date()
    account = make_account(today + timedelta(days=30), segment="plain")
    await start_account(floor.env.client, account, task_queue=floor.settings.task_queue)
    await eventually(lambda: account_timeline(floor.env.client, account.account_id), bool)
    return account.account_id


def section(html: str, heading: str) -> str:
    return html.split(f'id="{heading}"', 1)[1].split("</section>", 1)[0]


async def listed_complaints(http: httpx.AsyncClient, reference: str, present: bool = True) -> str:
    """The cases page's complaints list once it shows (or no longer shows) the account: the worker
    keeps the store the list reads moments after the account changes."""
    page = await eventually(lambda: http.get("/cases"), lambda page: (reference in page.text) is present)
    assert page.status_code == 200
    return section(page.text, "complaints-heading")


async def test_an_agent_records_a_complaint_and_a_specialist_answers_it_from_the_list(
    floor: Floor,  # noqa: F811
) -> None:
    account_id = await open_account(floor)
    ref = mask_reference(account_id)
    path = f"/accounts/{account_id}"
    async with signed_in(floor.site, "ana") as http:
        page = await http.get(path)
        complaints = section(page.text, "complaints-heading")
        assert (
            "No complaint on this account." in complaints and f"{path}/actions/open_complaint" in complaints
        )
        assert "/actions/acknowledge_complaint" not in page.text

        note = "Says the reminders came every day."
        asked = await act(http, account_id, "open_complaint", confirmed=False, note=note, received_at="")
        assert asked.status_code == 200 and f"Record a complaint on account {account_id}?" in asked.text
        assert note in asked.text and 'name="confirmed" value="yes"' in asked.text
        assert (await account_status(floor.env.client, account_id)).complaints == [], "asking changed nothing"

        opened = await act(http, account_id, "open_complaint", note=note, received_at="")
        assert location(opened) == f"/console{path}?flash=done_open_complaint#complaints"
        page = await http.get(location(opened).removeprefix("/console"))
        assert "The complaint is recorded and contact is held." in page.text
        complaints = section(page.text, "complaints-heading")
        assert "Contact is held for a complaint." in complaints and "Awaiting acknowledgement" in complaints
        assert "/actions/open_complaint" not in complaints, "one open complaint at a time"
        assert "/actions/acknowledge_complaint" not in complaints, "agents record, specialists answer"
        assert 'class="badge stage-paused"' in page.text and 'class="badge hold"' in page.text
        forbidden = await act(http, account_id, "acknowledge_complaint", complaint="1", note="Called back.")
        assert forbidden.status_code == 403 and "does not allow" in forbidden.text
        no_personal_data(page.text)

    async with signed_in(floor.site, "cai") as http:
        page = await http.get(path)
        assert "Awaiting acknowledgement" in page.text and "/actions/" not in page.text
        assert (
            await act(http, account_id, "resolve_complaint", complaint="1", outcome="upheld", note="x")
        ).status_code == 403

    async with signed_in(floor.site, "sol") as http:
        listing = await listed_complaints(http, ref)
        assert "Open complaints (1)" in listing and f'href="/console{path}#complaints"' in listing
        assert f">{account_id}<" not in listing, "named by its masked reference"
        row = next(row for row in listing.split("<tr") if ref in row)
        assert "Awaiting acknowledgement" in row and "Console" in row and "Deadline passed" not in row
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d \+08:00", row), "at the customer's offset"

        numbered = await act(
            http, account_id, "acknowledge_complaint", complaint="1", note="ref 1234 5678 noted"
        )
        assert numbered.status_code == 422 and "must hold no personal data" in numbered.text
        field = re.search(r'<textarea id="acknowledge_complaint-note"[^>]*>([^<]*)<', numbered.text)
        assert field and 'aria-invalid="true"' in field.group(0) and field.group(1) == "ref 1234 5678 noted"

        acknowledged = await act(
            http, account_id, "acknowledge_complaint", complaint="1", note="Called back, explained the plan."
        )
        assert location(acknowledged).endswith("?flash=done_acknowledge_complaint#complaints")
        page = await http.get(path)
        complaints = section(page.text, "complaints-heading")
        assert "Acknowledged" in complaints and "met</span>" in complaints
        assert (
            "/actions/acknowledge_complaint" not in complaints and "/actions/resolve_complaint" in complaints
        )

        asked = await act(
            http,
            account_id,
            "resolve_complaint",
            confirmed=False,
            complaint="1",
            outcome="partly_upheld",
            note="Fewer reminders agreed.",
        )
        assert "Resolve complaint 1 on account" in asked.text and "Partly upheld" in asked.text
        resolved = await act(
            http,
            account_id,
            "resolve_complaint",
            complaint="1",
            outcome="partly_upheld",
            note="Fewer reminders agreed.",
        )
        assert location(resolved).endswith("?flash=done_resolve_complaint#complaints")
        page = await http.get(path)
        complaints = section(page.text, "complaints-heading")
        assert "Resolved" in complaints and "Partly upheld" in complaints
        assert "Contact is held for a complaint." in complaints, "held until someone resumes"
        assert f"{path}/actions/resume" in page.text and "/actions/open_complaint" in complaints
        listing = await listed_complaints(http, ref, present=False)
        assert "Open complaints (0)" in listing and "No open complaint." in listing

        assert location(await act(http, account_id, "resume")).endswith("flash=done_resume")
    status = await account_status(floor.env.client, account_id)
    assert not status.contact_held_for_complaint and status.complaints[0].outcome == "partly_upheld"

    rows = [(row.actor, row.outcome, row.detail) for row in floor.console_rows(account_id)]
    assert rows == [
        ("ana", ACCEPTED, f"open_complaint note={note!r}"),
        ("ana", FORBIDDEN, "acknowledge_complaint complaint='1' note='Called back.'"),
        ("cai", FORBIDDEN, "resolve_complaint complaint='1' outcome='upheld' note='x'"),
        ("sol", REFUSED, "acknowledge_complaint complaint='1' note=<withheld: 19 characters, personal data>"),
        ("sol", ACCEPTED, "acknowledge_complaint complaint='1' note='Called back, explained the plan.'"),
        (
            "sol",
            ACCEPTED,
            "resolve_complaint complaint='1' outcome='partly_upheld' note='Fewer reminders agreed.'",
        ),
        ("sol", ACCEPTED, "resume"),
    ]


async def test_a_complaint_received_days_ago_is_escalated_and_marked_on_the_list_and_dashboard(
    floor: Floor,  # noqa: F811
) -> None:
    account_id = await open_account(floor)
    ref = mask_reference(account_id)
    received = (datetime.now(ZoneInfo(ZONE)) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
    ahead = (datetime.now(ZoneInfo(ZONE)) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    async with signed_in(floor.site, "sam") as http:
        future = await act(http, account_id, "open_complaint", received_at=ahead, note="")
        assert future.status_code == 422 and "is in the future" in future.text
        kept = re.search(r'<input id="open_complaint-received_at"[^>]*>', future.text)
        assert kept and f'value="{ahead}"' in kept.group(0) and 'aria-invalid="true"' in kept.group(0)

        location(await act(http, account_id, "open_complaint", received_at=received, note="A letter."))
        status = await eventually(
            lambda: account_status(floor.env.client, account_id),
            lambda status: (
                bool(status.complaints) and status.complaints[0].acknowledgement_overdue_at is not None
            ),
        )
        assert status.complaints[0].received_at.strftime("%Y-%m-%dT%H:%M") == received

        listing = await listed_complaints(http, ref)
        row = next(row for row in listing.split("<tr") if ref in row)
        assert 'class="complaint-late"' in row and "Deadline passed" in row
        assert "deadline-escalated" in row and "deadline-due" in row, (
            "acknowledgement escalated, resolution due"
        )

        page = await http.get(f"/accounts/{account_id}")
        complaints = section(page.text, "complaints-heading")
        assert "escalated</span>" in complaints and "Complaint not acknowledged in time" in page.text

        dashboard = section((await http.get("/dashboard")).text, "complaints-heading")
        assert re.search(r'tile-number">1</span><span class="tile-label">Open complaints', dashboard)
        assert re.search(
            r'tile-alert">.*?tile-number">1</span><span class="tile-label">With a deadline passed',
            dashboard,
            re.S,
        )

        chinese = await http.get(f"/accounts/{account_id}", headers={"accept-language": "zh-CN"})
        assert (
            "因投诉，自动联系已暂停。" in chinese.text
            and "已升级" in chinese.text
            and "待确认" in chinese.text
        )
    assert ComplaintStore(floor.site.engine).count_open() == 1


async def test_a_case_note_records_a_complaint_with_the_note_or_without_it(floor: Floor) -> None:  # noqa: F811
    case = await handed_over(floor)
    path = f"/cases/{case.id}"
    note = "Customer complains the calls came from 021 5555 1234 at night."
    async with signed_in(floor.site, "sol") as http:
        page = await http.get(path)
        assert 'name="complaint" value="yes"' in page.text and "This note records a complaint" in page.text

        empty = await post(http, path, f"{path}/notes", text="", complaint="yes")
        assert empty.status_code == 422 and 'id="note-complaint"' in empty.text
        assert re.search(r'id="note-complaint"[^>]* checked', empty.text), "the box stays ticked"
        assert (await account_status(floor.env.client, case.account_id)).complaints == []

        noted = await post(http, path, f"{path}/notes", text=note, complaint="yes")
        assert location(noted) == f"/console{path}?flash=note_complaint_opened_bare"
        shown = await http.get(location(noted).removeprefix("/console"))
        assert "a complaint is recorded on the account without it" in shown.text
        assert note in section(shown.text, "notes-heading"), "the case note keeps the whole text"
        assert "Complaint 1 is open on this account" in shown.text and 'name="complaint"' not in shown.text

        again = await post(http, path, f"{path}/notes", text="Complains again.", complaint="yes")
        assert again.status_code == 409 and "The note is saved, but no complaint was recorded" in again.text
        assert "complaint 1 is open" in again.text
        notes = section((await http.get(path)).text, "notes-heading")
        assert "Complains again." in notes, "the note stays saved"

    status = await account_status(floor.env.client, case.account_id)
    (complaint,) = status.complaints
    assert complaint.channel == "console" and status.contact_held_for_complaint
    rows = [
        (row.actor, row.outcome, row.detail.split(": ", 1)[1]) for row in floor.console_rows(case.account_id)
    ]
    assert rows[-5:] == [
        ("sol", REFUSED, "note (0 characters)"),
        ("sol", ACCEPTED, f"note ({len(note)} characters)"),
        ("sol", ACCEPTED, "complaint from the note: open_complaint (the note left out)"),
        ("sol", ACCEPTED, "note (16 characters)"),
        ("sol", REFUSED, "complaint from the note: open_complaint note='Complains again.'"),
    ]


async def test_a_short_plain_case_note_becomes_the_complaint_note(floor: Floor) -> None:  # noqa: F811
    case = await handed_over(floor)
    path = f"/cases/{case.id}"
    async with signed_in(floor.site, "sol") as http:
        noted = await post(
            http, path, f"{path}/notes", text="Unhappy with the tone of the calls.", complaint="yes"
        )
        assert location(noted) == f"/console{path}?flash=note_complaint_opened"
    timeline = await account_timeline(floor.env.client, case.account_id)
    opened = [entry.detail for entry in timeline if entry.kind == "complaint_opened"]
    assert len(opened) == 1 and "Unhappy with the tone of the calls." in opened[0]


async def test_a_note_naming_the_customer_is_left_out_and_never_audited(floor: Floor) -> None:  # noqa: F811
    """Only the account knows the customer's name: it refuses a note holding it, and the console then
    records the complaint without the note, or (on the account page) keeps the note for correcting."""
    case = await handed_over(floor)
    path = f"/cases/{case.id}"
    named = f"{NAME} complains about the tone of the calls."
    async with signed_in(floor.site, "sol") as http:
        noted = await post(http, path, f"{path}/notes", text=named, complaint="yes")
        assert location(noted) == f"/console{path}?flash=note_complaint_opened_bare"
        location(
            await act(
                http,
                case.account_id,
                "resolve_complaint",
                complaint="1",
                outcome="withdrawn",
                note="Withdrawn by phone.",
            )
        )
        refused = await act(http, case.account_id, "open_complaint", received_at="", note=named)
        assert refused.status_code == 422 and "the customer&#39;s name" in refused.text
        assert f">{named}</textarea>" in refused.text, "kept for correcting, on the user's own page"
    opened = [
        e.detail
        for e in await account_timeline(floor.env.client, case.account_id)
        if e.kind == "complaint_opened"
    ]
    assert len(opened) == 1 and NAME not in opened[0]
    details = [row.detail for row in floor.console_rows(case.account_id)]
    assert not [detail for detail in details if NAME in detail], details
    assert (
        f"complaint from the note: open_complaint note=<withheld: {len(named)} characters, personal data>"
        in details[-4]
    )
    assert details[-3].endswith("complaint from the note: open_complaint (the note left out)")
    assert details[-1] == f"open_complaint note=<withheld: {len(named)} characters, personal data>"


# --- in a real browser ----------------------------------------------------------------------------------


async def browser_page(floor: Floor, browser: Browser, name: str) -> Page:  # noqa: F811
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-US")
    page = await context.new_page()
    await page.goto(f"{floor.site.base}/console/login")
    await page.get_by_label("User name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/console/login" not in url)
    return page


@needs_chromium
async def test_in_a_browser_a_complaint_is_recorded_listed_acknowledged_and_resolved(
    floor: Floor,  # noqa: F811
    browser: Browser,
) -> None:
    account_id = await open_account(floor)
    ref = mask_reference(account_id)
    page = await browser_page(floor, browser, "sol")
    base = f"{floor.site.base}/console"
    await page.goto(f"{base}/accounts/{account_id}")
    form = page.locator(f'form[action$="/accounts/{account_id}/actions/open_complaint"]')
    await form.get_by_label("Note (optional)").fill("Says the reminders came every day.")
    await form.get_by_role("button", name="Record complaint…").click()
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url(lambda url: "flash=done_open_complaint" in url)
    assert "Contact is held for a complaint." in await page.locator("#complaints").inner_text()

    async def listed() -> bool:
        await page.goto(f"{base}/cases")
        return await page.locator("#complaints tbody tr", has_text=ref).count() == 1

    await eventually(listed, bool, attempts=200)
    await page.screenshot(path="/tmp/k/complaints.png", full_page=True)
    await page.locator("#complaints").get_by_role("link", name=ref).click()
    await page.wait_for_url(lambda url: f"/accounts/{account_id}" in url)

    acknowledge = page.locator('form[action$="/actions/acknowledge_complaint"]')
    await acknowledge.get_by_label("Note", exact=True).fill("Called back, explained the plan.")
    await acknowledge.get_by_role("button").click()
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url(lambda url: "flash=done_acknowledge_complaint" in url)
    await page.screenshot(path="/tmp/k/complaint-account.png", full_page=True)

    resolve = page.locator('form[action$="/actions/resolve_complaint"]')
    await resolve.get_by_label("Outcome").select_option("not_upheld")
    await resolve.get_by_label("Note", exact=True).fill("Reminders were within the rules.")
    await resolve.get_by_role("button").click()
    assert "Not upheld" in await page.locator("main").inner_text()
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url(lambda url: "flash=done_resolve_complaint" in url)
    row = page.locator("#complaint-1")
    assert "Resolved" in await row.inner_text() and "Not upheld" in await row.inner_text()
    assert await page.locator(f'form[action$="/accounts/{account_id}/actions/resume"]').count() == 1
    status = await account_status(floor.env.client, account_id)
    assert status.complaints[0].outcome == "not_upheld" and status.contact_held_for_complaint
    await eventually(lambda: _not_listed(page, base, ref), bool, attempts=200)
    html = await page.content()
    assert "Wang Xiaoming" not in html and "13800138000" not in html
    await page.context.close()


async def _not_listed(page: Page, base: str, ref: str) -> bool:
    await page.goto(f"{base}/cases")
    return await page.locator("#complaints tbody tr", has_text=ref).count() == 0
