"""Listing and bulk actions by visibility query (CLI and API), on the real dev server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from kindly.programs.api.app import create_app
from kindly.programs.api.settings import ApiSettings
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
    assert done.exit_code == 0 and "sent pause to 3 account(s)" in done.output
    for handle in handles[:3]:
        paused = await eventually(lambda: status(handle), lambda s: s.paused)  # noqa: B023
        assert paused.stage == "paused"
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
