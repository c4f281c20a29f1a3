"""The console's account pages on the real dev server (which takes workflow updates) with a worker: finding
accounts through visibility, an account's page, and the actions each role may take, confirmed first, sent
as updates, refused with the account's reason and status, forbidden before anything reaches the workflow,
and each one written to the audit log with who did it. No page shows the customer's name or number."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import TimelineKind
from kindly.programs.console import search
from kindly.programs.console.actions import ACTIONS
from kindly.programs.console.audit_query import ACCEPTED, FORBIDDEN, REFUSED
from kindly.programs.console.dashboard import daily_counts
from kindly.programs.operations import account_status, account_timeline
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from kindly.store import AuditEntry, AuditLog
from kindly.store.audit import CONSOLE_ACTION
from tests.conftest import eventually
from tests.lifecycle_helpers import local_today, make_account
from tests.test_console_auth import Site, console_site, csrf_of, location, signed_in, site  # noqa: F401  (a fixture)

NAME, PHONE = "Wang Xiaoming", "13800138000"
"""What ``make_account`` gives every customer: neither may appear on any page."""


@dataclass
class Floor:
    site: Site
    env: WorkflowEnvironment
    settings: Settings
    today: date

    async def open_account(self, due_in_days: int = 30, **overrides: Any) -> str:
        """A running account that has prepared itself and planned (due ``due_in_days`` from today)."""
        account = make_account(self.today + timedelta(days=due_in_days), **overrides)
        # Not ``lifecycle_helpers.start``: the dev server goes with the test, nothing is left to terminate.
        await start_account(self.env.client, account, task_queue=self.settings.task_queue)
        await eventually(lambda: account_timeline(self.env.client, account.account_id), bool)
        return account.account_id

    def console_rows(self, account_id: str) -> list[AuditEntry]:
        return [row for row in AuditLog(self.site.engine).audit_for(account_id) if row.kind == CONSOLE_ACTION]


@pytest.fixture
async def floor(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Floor]:
    async with console_site(dev_env.client, settings) as served:
        yield Floor(served, dev_env, settings, await local_today(dev_env))


async def act(
    http: httpx.AsyncClient, account_id: str, action: str, *, confirmed: bool = True, **values: str
) -> Any:
    """Post an action's form as the account page holds it (with its CSRF token)."""
    page = await http.get(f"/accounts/{account_id}")
    data = {"csrftoken": csrf_of(page.text), **values, **({"confirmed": "yes"} if confirmed else {})}
    return await http.post(f"/accounts/{account_id}/actions/{action}", data=data)


def no_personal_data(html: str) -> None:
    assert NAME not in html and PHONE not in html and "+86" not in html


async def test_a_supervisor_pauses_after_confirming_and_the_page_and_audit_show_it(floor: Floor) -> None:
    account_id = await floor.open_account()
    async with signed_in(floor.site, "sam") as http:
        page = await http.get(f"/accounts/{account_id}")
        assert page.status_code == 200 and f"/accounts/{account_id}/actions/pause" in page.text
        no_personal_data(page.text)

        asked = await act(http, account_id, "pause", confirmed=False, reason="customer in hospital")
        assert asked.status_code == 200
        assert (
            f"Pause all contact with account {account_id}?" in asked.text
            and "customer in hospital" in asked.text
        )
        assert (
            'name="confirmed" value="yes"' in asked.text
            and f'href="/console/accounts/{account_id}"' in asked.text
        )
        assert not (await account_status(floor.env.client, account_id)).paused, "asking changed nothing"
        assert floor.console_rows(account_id) == []

        confirmed = await http.post(
            f"/accounts/{account_id}/actions/pause",
            data={
                "csrftoken": csrf_of(asked.text),
                "reason": "customer in hospital",
                "until": "",
                "confirmed": "yes",
            },
        )
        assert location(confirmed) == f"/console/accounts/{account_id}?flash=done_pause"
        shown = await http.get(location(confirmed).removeprefix("/console"))
        assert "Contact is paused." in shown.text and "stage-paused" in shown.text
        timeline = shown.text.split('id="timeline-heading"', 1)[1]
        assert 'class="kind-paused"' in timeline and "customer in hospital" in timeline
        assert f"/accounts/{account_id}/actions/resume" in shown.text
        assert f"/accounts/{account_id}/actions/pause" not in shown.text, "a paused account offers resume"
        no_personal_data(shown.text)

    [row] = floor.console_rows(account_id)
    assert (row.actor, row.outcome) == ("sam", ACCEPTED) and row.event_key.startswith("console:")
    assert row.detail == "pause reason='customer in hospital'"
    assert (await account_status(floor.env.client, account_id)).paused


async def test_a_refused_action_says_why_with_its_status_and_keeps_the_input(floor: Floor) -> None:
    account_id = await floor.open_account()
    async with signed_in(floor.site, "sam") as http:
        not_paused = await act(http, account_id, "resume")
        assert not_paused.status_code == 409
        assert "account is not paused" in not_paused.text and 'role="alert"' in not_paused.text

        too_much = await act(http, account_id, "settle", amount="99999", reference="S-9")
        assert too_much.status_code == 422 and "more than the amount due" in too_much.text
        amount = re.search(r'<input id="settle-amount"[^>]*>', too_much.text)
        assert amount and 'value="99999"' in amount.group(0) and 'aria-invalid="true"' in amount.group(0)
        assert 'value="S-9"' in too_much.text

        past = await act(http, account_id, "pause", reason="r", until="2020-01-01T09:00")
        assert past.status_code == 422 and "not in the future" in past.text

        blank = await act(http, account_id, "close", reason="")
        assert blank.status_code == 422, "an empty reason is refused at the form"
    outcomes = [(row.actor, row.outcome, row.detail.split()[0]) for row in floor.console_rows(account_id)]
    assert outcomes == [("sam", REFUSED, name) for name in ("resume", "settle", "pause", "close")]
    status = await account_status(floor.env.client, account_id)
    assert not status.paused and str(status.stage) != "settled"


async def test_an_agent_cannot_settle_and_the_refusal_is_audited(floor: Floor) -> None:
    account_id = await floor.open_account()
    async with signed_in(floor.site, "ana") as http:
        page = await http.get(f"/accounts/{account_id}")
        assert f"/accounts/{account_id}/actions/pause" in page.text
        assert f"/accounts/{account_id}/actions/settle" not in page.text
        assert f"/accounts/{account_id}/actions/close" not in page.text
        refused = await act(http, account_id, "settle", amount="1500.00", reference="S-1")
        assert refused.status_code == 403 and "does not allow" in refused.text
    [row] = floor.console_rows(account_id)
    assert (row.actor, row.outcome, row.kind) == ("ana", FORBIDDEN, CONSOLE_ACTION)
    assert row.detail == "settle amount='1500.00' reference='S-1'"
    assert str((await account_status(floor.env.client, account_id)).stage) != "settled"


async def test_compliance_reads_every_page_but_every_action_is_forbidden(floor: Floor) -> None:
    account_id = await floor.open_account()
    async with signed_in(floor.site, "cai") as http:
        page = await http.get(f"/accounts/{account_id}")
        assert page.status_code == 200 and "can view this account but not change it" in page.text
        assert "/actions/" not in page.text, "no action form is shown"
        for name in ACTIONS:
            answer = await act(
                http, account_id, name, reason="x", date="2099-01-01", amount="1", reference="R-1"
            )
            assert answer.status_code == 403, name
    rows = floor.console_rows(account_id)
    assert sorted(row.detail.split()[0] for row in rows) == sorted(ACTIONS)
    assert {(row.actor, row.outcome) for row in rows} == {("cai", FORBIDDEN)}
    kinds = [entry.kind for entry in await account_timeline(floor.env.client, account_id)]
    assert TimelineKind.PAUSED not in kinds and TimelineKind.CLOSED not in kinds


async def test_an_action_without_its_csrf_token_changes_nothing(floor: Floor) -> None:
    account_id = await floor.open_account()
    async with signed_in(floor.site, "sam") as http:
        forged = await http.post(
            f"/accounts/{account_id}/actions/pause", data={"reason": "forged", "confirmed": "yes"}
        )
        assert forged.status_code == 403
    assert not (await account_status(floor.env.client, account_id)).paused
    assert floor.console_rows(account_id) == [], "the request never reached the console"


async def test_accounts_are_found_by_id_stage_and_days_past_due_a_page_at_a_time(
    floor: Floor, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"LN-FIND-{uuid.uuid4().hex[:6]}"
    ids = [await floor.open_account(due, account_id=f"{prefix}-{n}") for n, due in enumerate((30, -10, -40))]
    async with signed_in(floor.site, "sam") as http:

        async def found(**params: str) -> set[str]:
            page = await http.get("/accounts", params={"account_id": prefix, **params})
            assert page.status_code == 200, page.text
            no_personal_data(page.text)
            return set(re.findall(rf"/console/accounts/({prefix}-\d)", page.text))

        assert await eventually(lambda: found(), lambda got: got == set(ids))
        assert await found(min_dpd="20") == {ids[2]}
        assert await found(max_dpd="15") == {ids[0], ids[1]}
        assert await found(min_dpd="5", max_dpd="15") == {ids[1]}
        assert await found(stage="pre_due") == {ids[0]}
        assert await found(paused="yes") == set()
        invalid = await http.get("/accounts", params={"account_id": 'x" OR 1=1'})
        assert invalid.status_code == 422 and 'aria-invalid="true"' in invalid.text

        monkeypatch.setattr(search, "PAGE_SIZE", 2)
        first = await http.get("/accounts", params={"account_id": prefix})
        shown = set(re.findall(rf"/console/accounts/({prefix}-\d)", first.text))
        following = re.search(r'href="/console(/accounts\?[^"]*page=[^"]+)" rel="next"', first.text)
        assert len(shown) == 2 and following, first.text
        second = await http.get(following.group(1).replace("&amp;", "&"))
        rest = set(re.findall(rf"/console/accounts/({prefix}-\d)", second.text))
        assert shown | rest == set(ids) and not shown & rest and 'rel="next"' not in second.text


async def test_the_account_page_shows_sms_deferrals_and_audit_without_personal_data(floor: Floor) -> None:
    account_id = await floor.open_account()
    now = datetime.now(UTC)
    AuditLog(floor.site.engine).append(
        [
            AuditEntry(
                event_key=f"t-{uuid.uuid4()}",
                account_id=account_id,
                at=now,
                kind=TimelineKind.SMS_SENT.value,
                detail="sms first_overdue sent",
                touchpoint=3,
                template="first_overdue",
                outcome="accepted",
            )
        ]
    )
    async with signed_in(floor.site, "sam") as http:
        await act(http, account_id, "pause", reason="wrote to us")
        page = await http.get(f"/accounts/{account_id}")
    sms = page.text.split('id="sms-heading"', 1)[1].split("</section>", 1)[0]
    assert "first_overdue" in sms and ">3<" in sms
    audit = page.text.split('id="audit-heading"', 1)[1]
    assert "pause reason=&#39;wrote to us&#39;" in audit and "<td>sam</td>" in audit
    no_personal_data(page.text)


async def test_the_account_page_in_chinese(floor: Floor) -> None:
    account_id = await floor.open_account()
    async with signed_in(floor.site, "sam") as http:
        page = await http.get(f"/accounts/{account_id}")
        switched = await http.post(
            "/locale",
            data={
                "locale": "zh-CN",
                "next": f"/console/accounts/{account_id}",
                "csrftoken": csrf_of(page.text),
            },
        )
        assert location(switched) == f"/console/accounts/{account_id}"
        chinese = await http.get(f"/accounts/{account_id}")
        assert (
            '<html lang="zh-CN">' in chinese.text and "暂停联系" in chinese.text and "到期前" in chinese.text
        )
        refused = await act(http, account_id, "resume")
        assert refused.status_code == 409 and "未执行：恢复联系" in refused.text


async def test_the_dashboard_counts_today_and_draws_the_last_30_days(floor: Floor) -> None:
    await floor.open_account()
    await floor.open_account()
    now = datetime.now(UTC)
    AuditLog(floor.site.engine).append(
        [
            AuditEntry(
                event_key=f"t-{i}", account_id="LN-X", at=now - timedelta(days=n), kind="sms_sent", detail=""
            )
            for i, n in enumerate((0, 0, 0, 3))
        ]
    )
    async with signed_in(floor.site, "sam") as http:
        page = await eventually(lambda: http.get("/dashboard"), lambda p: "2 open accounts." in p.text)
    today = page.text.split('id="today-heading"', 1)[1].split("</ul>", 1)[0]
    assert re.search(r'tile-number">3</span><span class="tile-label">SMS sent', today), today
    assert page.text.count("<svg") == 2 and "/console/reports/cure-curve" in page.text
    no_personal_data(page.text)


async def test_the_dashboard_is_not_for_agents(floor: Floor) -> None:
    async with signed_in(floor.site, "ana") as http:
        assert (await http.get("/dashboard")).status_code == 403


def _row(account_id: str, at: datetime, kind: str, detail: str = "", **fields: Any) -> AuditEntry:
    return AuditEntry(
        event_key=f"t-{uuid.uuid4()}", account_id=account_id, at=at, kind=kind, detail=detail, **fields
    )


async def test_the_audit_view_answers_what_was_sent_held_back_and_refused(
    site: Site,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    AuditLog(site.engine).append(
        [
            _row("LN-A", now - timedelta(days=40), "sms_sent", "sms pre_due sent", template="pre_due"),
            _row(
                "LN-A",
                now - timedelta(hours=3),
                "sms_sent",
                "sms first_overdue sent",
                template="first_overdue",
            ),
            _row(
                "LN-A",
                now - timedelta(hours=2),
                "deferred",
                "sms follow_up deferred (2026-12-08 quiet_hours)",
            ),
            _row("LN-B", now - timedelta(hours=1), "signal_rejected", "pause rejected: reason missing"),
            _row("LN-B", now - timedelta(minutes=30), CONSOLE_ACTION, "resume", outcome=REFUSED, actor="sam"),
            _row(
                "LN-B",
                now - timedelta(minutes=20),
                CONSOLE_ACTION,
                "pause reason='x'",
                outcome=ACCEPTED,
                actor="sam",
            ),
            _row(
                "LN-B", now - timedelta(minutes=10), CONSOLE_ACTION, "settle", outcome=FORBIDDEN, actor="ana"
            ),
        ]
    )
    async with signed_in(site, "cai") as http:
        sent = await http.get("/audit", params={"quick": "sent"})
        assert sent.text.index("sms first_overdue sent") < sent.text.index("sms pre_due sent"), "newest first"
        assert "deferred (" not in sent.text and "resume" not in sent.text.split('id="log-heading"', 1)[1]
        held = (await http.get("/audit", params={"quick": "deferred"})).text.split('id="log-heading"', 1)[1]
        assert "quiet_hours" in held and "sms_sent" not in held and "first_overdue sent" not in held
        refused = (await http.get("/audit", params={"quick": "refused"})).text.split('id="log-heading"', 1)[1]
        assert "pause rejected" in refused and "<td>resume</td>" in refused and "<td>settle</td>" in refused
        assert "pause reason=" not in refused, "an accepted action is no refusal"
        by_sam = (await http.get("/audit", params={"actor": "sam"})).text.split('id="log-heading"', 1)[1]
        assert by_sam.count("<td>sam</td>") == 2 and "<td>ana</td>" not in by_sam
        recent = (
            await http.get(
                "/audit", params={"account_id": "LN-A", "since": str(now.date() - timedelta(days=1))}
            )
        ).text
        assert (
            "first_overdue sent" in recent
            and "pre_due sent" not in recent
            and "LN-B" not in recent.split('id="log-heading"', 1)[1]
        )
        bad = await http.get("/audit", params={"since": "yesterday"})
        assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text

        monkeypatch.setattr("kindly.programs.console.audit_view.PAGE_SIZE", 3)
        seen: list[str] = []
        path = "/audit"
        while True:
            page = (await http.get(path)).text.split('id="log-heading"', 1)[1]
            seen += re.findall(r'<tr class="kind-[a-z_]+">\s*<td class="nowrap">([^<]+)</td>', page)
            following = re.search(r'href="/console(/audit\?[^"]+)" rel="next"', page)
            if following is None:
                break
            path = following.group(1).replace("&amp;", "&")
        assert len(seen) == 7 and seen == sorted(seen, reverse=True), seen


def test_the_charts_count_each_local_day_once(site: Site) -> None:  # noqa: F811
    zone = ZoneInfo("Asia/Shanghai")
    day = date(2026, 12, 7)
    start = datetime(2026, 12, 7, 0, 0, tzinfo=zone)
    AuditLog(site.engine).append(
        [
            _row("LN-C", start - timedelta(seconds=1), "sms_sent"),  # the day before, local time
            _row("LN-C", start, "sms_sent"),
            _row("LN-C", start + timedelta(hours=23, minutes=59), "sms_sent"),
            _row("LN-C", start + timedelta(hours=2), "deferred"),
            _row("LN-C", start - timedelta(days=2), "deferred"),
            _row("LN-C", start + timedelta(days=1), "sms_sent"),  # after the last day
        ]
    )
    counts = daily_counts(site.engine, day, 3, zone, (TimelineKind.SMS_SENT, TimelineKind.DEFERRED))
    assert counts == {"sms_sent": [0, 1, 2], "deferred": [1, 0, 1]}


async def test_the_report_and_experiment_pages(site: Site) -> None:  # noqa: F811
    async with signed_in(site, "sam") as http:
        curve = await http.get("/reports/cure-curve")
        assert curve.status_code == 200 and "<table" in curve.text and "Cure curve" in curve.text
        unsplit = await http.get("/reports/rates", params={"by": "arm"})
        assert unsplit.status_code == 422 and 'role="alert"' in unsplit.text
        assert (await http.get("/reports/no-such-report")).status_code == 400
        assert (await http.get("/experiments/no-such-experiment")).status_code == 404
