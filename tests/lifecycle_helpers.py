"""Helpers for lifecycle tests: build accounts relative to the test server's clock, read state."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import AccountInput, AccountResult, AccountStatus, TimelineEntry
from kindly.programs.temporal import start_account

_counter = iter(range(1, 1_000_000))

STARTED: list[WorkflowHandle[Any, AccountResult]] = []
"""Handles started by the current test: the conftest terminates those still open afterwards, so a
forgotten timer on the shared time-skipping server cannot hold up the next test."""


async def local_today(env: WorkflowEnvironment, timezone: str = "Asia/Shanghai") -> date:
    now = await env.get_current_time()
    return now.astimezone(ZoneInfo(timezone)).date()


def make_account(due_date: date, **overrides: Any) -> AccountInput:
    fields: dict[str, Any] = {
        "account_id": f"LN-TEST-{next(_counter):06d}",
        "customer_name": "Wang Xiaoming",
        "phone": "+8613800138000",
        "timezone": "Asia/Shanghai",
        "locale": "zh-CN",
        "amount_due": Decimal("1500.00"),
        "currency": "CNY",
        "due_date": due_date,
        "segment": "plain",
    }
    fields.update(overrides)
    return AccountInput.model_validate(fields)


async def start(
    client: Client, settings_task_queue: str, account: AccountInput
) -> WorkflowHandle[Any, AccountResult]:
    handle = await start_account(client, account, task_queue=settings_task_queue)
    STARTED.append(handle)
    return handle


async def after_first_reminder(
    env: WorkflowEnvironment, client: Client, task_queue: str
) -> WorkflowHandle[Any, AccountResult]:
    """An account due yesterday, one day on: its first reminder has gone, whatever the hour now."""
    from tests.conftest import eventually  # conftest imports this module lazily too

    handle = await start(client, task_queue, make_account((await local_today(env)) - timedelta(days=1)))
    await env.sleep(timedelta(days=1))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    return handle


QUERY_TIMEOUT = timedelta(seconds=60)
"""A query that meets a running local activity is answered only when the worker heartbeats that workflow
task (about 8 s), which on a loaded machine can pass the RPC's default deadline."""


async def status(handle: WorkflowHandle[Any, Any]) -> AccountStatus:
    result: AccountStatus = await handle.query("status", result_type=AccountStatus, rpc_timeout=QUERY_TIMEOUT)
    return result


async def timeline(handle: WorkflowHandle[Any, Any]) -> list[TimelineEntry]:
    result: list[TimelineEntry] = await handle.query(
        "timeline", result_type=list[TimelineEntry], rpc_timeout=QUERY_TIMEOUT
    )
    return result


def kinds(entries: list[TimelineEntry]) -> list[str]:
    return [entry.kind for entry in entries]


def local_clock(entry: TimelineEntry) -> datetime:
    return datetime.fromisoformat(entry.at)


def days(n: float) -> timedelta:
    return timedelta(days=n)
