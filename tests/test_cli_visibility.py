"""Listing and bulk actions by visibility query (CLI and API), on the real dev server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import WORKFLOW_TYPE, workflow_id_for
from kindly.domain.search_attributes import as_start_attributes, start_values
from kindly.programs.api.app import create_app
from kindly.programs.api.settings import ApiSettings
from kindly.programs.operations import money
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from kindly.store import make_engine
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.lifecycle_helpers import make_account, status
from tests.test_cli import kindly


async def test_list_and_bulk_pause_by_segment_with_dry_run_and_confirmation(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = dev_env.client
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    chosen = [make_account(today - timedelta(days=40), segment="gentle") for _ in range(3)]
    other = make_account(today - timedelta(days=40), segment="plain")
    handles = [
        await start_account(client, account, task_queue=settings.task_queue) for account in [*chosen, other]
    ]

    async def listed() -> str:
        return (await kindly(dev_env, settings, "list", "--segment", "gentle", "--min-dpd", "30")).output

    output = await eventually(listed, lambda text: "3 account(s)" in text, attempts=800)
    for account in chosen:
        assert account.account_id in output
    assert other.account_id not in output and "Wang" not in output

    dry = await kindly(
        dev_env, settings, "bulk-pause", "--segment", "gentle", "--reason", "audit", "--dry-run"
    )
    assert dry.exit_code == 0 and "3 account(s) match" in dry.output
    assert not any([(await status(h)).paused for h in handles])

    refused = await kindly(dev_env, settings, "bulk-pause", "--segment", "gentle", "--reason", "audit")
    assert refused.exit_code == 1  # no "y" on standard input: aborted, nothing sent
    assert not any([(await status(h)).paused for h in handles])

    done = await kindly(dev_env, settings, "bulk-pause", "--segment", "gentle", "--reason", "audit", "--yes")
    assert done.exit_code == 0 and "pause: done for 3 account(s)" in done.output
    for handle in handles[:3]:
        paused = await eventually(lambda: status(handle), lambda s: s.paused)  # noqa: B023
        assert paused.stage == "paused"
    assert not (await status(handles[3])).paused
    # Each account answers for itself: a pause that ended in the past is refused by each, naming why.
    two = f'WorkflowId IN ("{handles[0].id}", "{handles[3].id}")'
    late = ["--reason", "late", "--until", "2020-01-01T09:00:00+08:00", "--yes"]
    answered = await kindly(dev_env, settings, "bulk-pause", "--query", two, *late)
    assert answered.exit_code == 1 and "pause: done for 0 account(s)" in answered.output, answered.output
    for account in (chosen[0], other):
        assert f"refused {account.account_id}: until: 2020-01-01T09:00:00+08:00 is not" in answered.output
    assert not (await status(handles[3])).paused

    setup = await kindly(dev_env, settings, "setup")
    assert setup.exit_code == 0 and "present" in setup.output
    for handle in handles:
        await handle.terminate("test over")


async def test_bad_filter_value_is_refused(dev_env: WorkflowEnvironment, settings: Settings) -> None:
    result = await kindly(dev_env, settings, "list", "--segment", 'x" OR "1"="1')
    assert result.exit_code == 2 and "quotes" in result.output


async def test_api_lists_accounts_by_search_attributes(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = dev_env.client
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    late = make_account(today - timedelta(days=40), segment="gentle")
    early = make_account(today + timedelta(days=20), segment="gentle")
    handles = [await start_account(client, a, task_queue=settings.task_queue) for a in (late, early)]
    api_settings = ApiSettings(api_key=SecretStr("key"))
    app = create_app(client, settings, api_settings, make_engine(settings.database_url))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers={"X-API-Key": "key"}) as http:

        async def listed() -> list[dict[str, Any]]:
            answer = await http.get("/accounts", params={"segment": "gentle", "min_days_past_due": 30})
            assert answer.status_code == 200, answer.text
            rows: list[dict[str, Any]] = answer.json()
            return rows

        rows = await eventually(listed, lambda r: len(r) == 1, attempts=800)
        assert rows[0]["account_id"] == late.account_id and rows[0]["stage"] == "overdue"
        assert "phone" not in rows[0] and "customer_name" not in rows[0]
        soon = (datetime.now(UTC) + timedelta(days=60)).isoformat()
        both = await http.get("/accounts", params={"segment": "gentle", "next_touchpoint_before": soon})
        assert both.status_code == 200
        naive = await http.get("/accounts", params={"next_touchpoint_before": "2026-12-01T09:00:00"})
        assert naive.status_code == 422 and "offset" in naive.text
        async with httpx.AsyncClient(base_url=url) as anonymous:
            assert (await anonymous.get("/accounts")).status_code == 401
    for handle in handles:
        await handle.terminate("test over")


async def test_an_account_waiting_with_the_specialists_is_found_by_its_days_past_due(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    """Days past due come from the due date given at the start, not from a count the workflow published
    when it last moved: an account that waits in the specialist stage is still found as it ages."""
    client = dev_env.client
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    waiting = make_account(today - timedelta(days=60), segment="plain", timezone="Asia/Shanghai")
    recent = make_account(today - timedelta(days=20), segment="plain", timezone="Asia/Shanghai")
    handles = [await start_account(client, a, task_queue=settings.task_queue) for a in (waiting, recent)]
    await handles[0].signal("customer_reply", {"text": "I dispute this debt"})
    await eventually(lambda: status(handles[0]), lambda s: s.stage == "specialist", attempts=800)

    async def listed() -> str:
        return (await kindly(dev_env, settings, "list", "--stage", "specialist", "--min-dpd", "45")).output

    output = await eventually(listed, lambda text: "1 account(s)" in text, attempts=800)
    assert waiting.account_id in output and recent.account_id not in output
    api_settings = ApiSettings(api_key=SecretStr("key"))
    app = create_app(client, settings, api_settings, make_engine(settings.database_url))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers={"X-API-Key": "key"}) as http:
        answer = await http.get("/accounts", params={"stage": "specialist", "min_days_past_due": 45})
        assert answer.status_code == 200, answer.text
        rows = answer.json()
        assert [row["account_id"] for row in rows] == [waiting.account_id]
        assert rows[0]["days_past_due"] == 60
        none = await http.get("/accounts", params={"stage": "specialist", "min_days_past_due": 61})
        assert none.status_code == 200 and none.json() == []
    for handle in handles:
        await handle.terminate("test over")


def test_amounts_are_decimal_strings_with_two_places() -> None:
    assert [money(amount) for amount in (3200.0, 1234.5, 0.07, 9999999999999999.99)] == [
        "3200.00",
        "1234.50",
        "0.07",
        "10000000000000000.00",  # the float AmountDue holds: as near as a double comes
    ]


def _winter_due_date(today: date) -> date:
    """A due date whose first reminder (7 days before) falls in December, after ``today``: New York
    is on standard time then, UTC-05:00."""
    due = date(today.year, 12, 28)
    return due if due - timedelta(days=7) > today + timedelta(days=1) else date(today.year + 1, 12, 28)


async def test_the_list_shows_instants_in_the_customers_offset_and_amounts_with_their_currency(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = dev_env.client
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    amount = Decimal("3200.00")
    in_shanghai = make_account(today + timedelta(days=20), amount_due=amount, currency="CNY")
    in_new_york = make_account(
        _winter_due_date(today),
        timezone="America/New_York",
        locale="en-US",
        amount_due=amount,
        currency="USD",
    )
    handles = [
        await start_account(client, a, task_queue=settings.task_queue) for a in (in_shanghai, in_new_york)
    ]
    # Started without Currency and TimeZone (a starter older than them): its run publishes them.
    older = make_account(today + timedelta(days=20))
    given = {**start_values(older, "pre_due"), "Currency": None, "TimeZone": None}
    handles.append(
        await client.start_workflow(
            WORKFLOW_TYPE,
            older.model_dump(mode="json"),
            id=workflow_id_for(older.account_id),
            task_queue=settings.task_queue,
            search_attributes=as_start_attributes(given),
        )
    )
    api_settings = ApiSettings(api_key=SecretStr("key"))
    app = create_app(client, settings, api_settings, make_engine(settings.database_url))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers={"X-API-Key": "key"}) as http:

        async def listed() -> dict[str, dict[str, Any]]:
            answer = await http.get("/accounts", params={"segment": "plain"})
            assert answer.status_code == 200, answer.text
            return {row["account_id"]: row for row in answer.json()}

        rows = await eventually(
            listed,
            lambda r: (
                len(r) == 3 and all(row["next_touchpoint_at"] and row["timezone"] for row in r.values())
            ),
            attempts=800,
        )
    shanghai, new_york, old = (rows[a.account_id] for a in (in_shanghai, in_new_york, older))
    assert shanghai["next_touchpoint_at"].endswith("+08:00")
    assert new_york["next_touchpoint_at"].endswith("-05:00")
    assert old["next_touchpoint_at"].endswith("+08:00")
    # The first reminder, a week before the due date, on the customer's own calendar.
    for row, account in ((shanghai, in_shanghai), (new_york, in_new_york)):
        local = datetime.fromisoformat(row["next_touchpoint_at"])
        assert local.date() == account.due_date - timedelta(days=7)
        assert local.utcoffset() == local.astimezone(ZoneInfo(account.timezone)).utcoffset()
    # DueDate is midnight in the customer's zone (16:00 UTC the day before, in Shanghai): shown as that date.
    assert (
        shanghai["due_date"] == in_shanghai.due_date.isoformat() and shanghai["timezone"] == "Asia/Shanghai"
    )
    assert new_york["due_date"] == in_new_york.due_date.isoformat()
    assert (shanghai["amount_due"], shanghai["currency"]) == ("3200.00", "CNY")
    assert (new_york["amount_due"], new_york["currency"]) == ("3200.00", "USD")
    assert (old["amount_due"], old["currency"], old["due_date"], old["timezone"]) == (
        "1500.00",
        "CNY",
        older.due_date.isoformat(),
        "Asia/Shanghai",
    )

    output = (await kindly(dev_env, settings, "list", "--segment", "plain")).output
    assert "3 account(s)" in output
    for row in (shanghai, new_york, old):
        assert row["account_id"] in output and row["next_touchpoint_at"] in output
    assert "3200.00 CNY" in output and "3200.00 USD" in output and in_shanghai.due_date.isoformat() in output
    for handle in handles:
        await handle.terminate("test over")
