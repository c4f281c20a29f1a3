"""The built-in work queues fed by real escalations on the time-skipping server: with no hand-off URL, a
call task lands in the phone queue with the facts the queue orders it by; a call-back the customer asked
for comes as a task at their time; an unanswered call-back hands the account to a specialist case of the
right kind; and the specialists hand it back to the automated cadence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import Outcome, Stage
from kindly.keyring import load_keyring
from kindly.programs.temporal import ensure_search_attributes
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from kindly.store import SpecialistCase, SpecialistCases, WorkQueue, make_engine
from tests.conftest import eventually
from tests.lifecycle_helpers import local_today, make_account, start, status, timeline

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def queue_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"phone_webhook_url": None, "specialist_webhook_url": None})


@pytest.fixture
async def queue_client(env: WorkflowEnvironment, queue_settings: Settings) -> AsyncIterator[Client]:
    await ensure_search_attributes(env.client, env.client.namespace)
    async with build_worker(env.client, queue_settings) as worker, worker:
        yield env.client


async def test_escalations_fill_the_phone_queue_and_the_specialists_cases(
    env: WorkflowEnvironment, queue_client: Client, queue_settings: Settings
) -> None:
    engine = make_engine(queue_settings.database_url)
    keyring = load_keyring(queue_settings)
    queue, cases = WorkQueue(engine, keyring), SpecialistCases(engine, keyring)
    today = await local_today(env)
    account = make_account(today - timedelta(days=1))
    handle = await start(queue_client, queue_settings.task_queue, account)
    await env.sleep(timedelta(days=22))
    await eventually(lambda: status(handle), lambda s: s.stage is Stage.PHONE)

    # Listed as of the moment it was made (by now, the day's window may have closed on it).
    made = await _escalated_at(handle, 1)
    [first] = queue.open_tasks(made, 10)
    assert (first.account_id, first.attempt, first.currency) == (account.account_id, 1, "CNY")
    assert (first.due_date, first.timezone, first.regime, first.locale) == (
        account.due_date,
        "Asia/Shanghai",
        "cn",
        "zh-CN",
    )
    assert first.window_start == time(9) and first.window_end == time(20)
    assert first.offered_until is not None and _utc(first.offered_until) > made
    assert account.phone not in first.phone_encrypted

    # The escalation may be a day or more behind the clock, which a call-back must be ahead of.
    tomorrow = (await env.get_current_time()).astimezone(SHANGHAI).date() + timedelta(days=1)
    call_back_at = datetime.combine(tomorrow, time(15, 0), SHANGHAI)
    await handle.signal("call_outcome", {"outcome": "call_back", "call_back_at": call_back_at.isoformat()})
    await env.sleep(timedelta(days=2))

    made = await _escalated_at(handle, 2)
    assert made == call_back_at, "the call-back's task is made at the customer's time"
    [call_back] = queue.open_tasks(made, 10)
    assert call_back.attempt == 2 and call_back.call_back_at is not None
    assert _utc(call_back.call_back_at) == call_back_at
    assert call_back.reason.startswith("customer asked to be called back at")
    superseded = queue.get(first.id or 0)
    assert superseded is not None and superseded.closed_reason == "superseded"

    await handle.signal("call_outcome", {"outcome": "no_answer"})
    await eventually(lambda: status(handle), lambda s: s.stage is Stage.SPECIALIST)
    case = await eventually(lambda: _case_of(cases, account.account_id), lambda found: found is not None)
    assert case is not None and case.kind == "no_contact" and account.phone not in str(case)

    await handle.signal("resume", {})
    back = await eventually(lambda: status(handle), lambda s: s.escalation is None)
    assert back.unanswered_sms == 0 and back.stage is Stage.OVERDUE
    assert any("handed back to automated contact" in entry.detail for entry in await timeline(handle))
    await handle.signal("close", {"reason": "test over"})
    assert (await handle.result()).outcome is Outcome.CLOSED


async def _case_of(cases: SpecialistCases, account_id: str) -> SpecialistCase | None:
    return cases.case_for_account(account_id)


async def _escalated_at(handle: WorkflowHandle[Any, Any], attempt: int) -> datetime:
    entries = await eventually(
        lambda: timeline(handle),
        lambda found: any(f"call task attempt {attempt} " in entry.detail for entry in found),
    )
    [entry] = [entry for entry in entries if f"call task attempt {attempt} " in entry.detail]
    return datetime.fromisoformat(entry.at)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
