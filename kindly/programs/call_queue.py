"""The phone queue as agents work it: the store's open call tasks, less what the law or the account forbid
now, and the claims and outcomes that go with them.

The store (``kindly.store.work_queue``) orders tasks and settles claims; this module adds what only the
present can tell:

* **The account still needs the call.** A task whose account's run has ended (repaid, settled, closed) is
  closed. One whose account is no longer in the phone stage (a reply, a promise, a pause) is hidden, and
  closed once it is older than ``VISIBILITY_LAG``: the run publishes its stage moments after it adds the
  task, so a young task is given the benefit of the doubt. A claim asks the account itself (the status
  query), which is never stale.
* **The regime's call limits** (``kindly.domain.policy.limits``), counted on the calls agents recorded in
  the customer's own days, and the call window at the customer's clock. A task that would break either is
  listed with the reason but not offered, and cannot be claimed.
* **Outcomes reach the account as updates**, so the agent sees at once whether the account took it; only
  an accepted outcome closes the task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from temporalio.client import Client

from kindly.domain.contract import (
    WORKFLOW_ID_PREFIX,
    AccountStatus,
    CallOutcome,
    SignalName,
    Stage,
    workflow_id_for,
)
from kindly.domain.policy.limits import regime_call_limit_reason
from kindly.domain.policy.model import REGIMES, RegimeRules
from kindly.domain.search_attributes import COLLECTION_STAGE
from kindly.programs.operations import account_status, act_on_account
from kindly.store.call_tasks import CallRecord, CallTask, TaskUnavailable
from kindly.store.work_queue import WorkQueue

logger = logging.getLogger(__name__)

VISIBILITY_LAG = timedelta(minutes=10)
"""How long a new task may wait for its account's stage to show ``phone`` in visibility."""
HISTORY_DAYS = 8
"""Days of recorded calls the limits look back on: the longest window (7 days) and a day's offset."""

__all__ = [
    "CallLimits",
    "OfferedTask",
    "TaskUnavailable",
    "call_limits",
    "claim_task",
    "offered_tasks",
    "record_call_outcome",
]


@dataclass(frozen=True)
class CallLimits:
    """The regime's limits on this account's calls, as counted today, and what they allow now."""

    regime: str
    attempts_today: int
    connected_today: int
    attempts_7_days: int
    rules: RegimeRules | None
    refusal: str | None
    """``call_cap``, ``after_conversation`` or ``outside_window``; None when a call is allowed now."""


@dataclass(frozen=True)
class OfferedTask:
    task: CallTask
    days_past_due: int | None
    limits: CallLimits
    claimed: bool
    """Someone holds a live lease on it: the viewer, or another agent (``task.claimed_by`` says who)."""

    @property
    def offered(self) -> bool:
        return self.limits.refusal is None and not self.claimed


def call_limits(task: CallTask, history: Sequence[CallRecord], now: datetime) -> CallLimits:
    """What the regime allows this task's account now, on the calls recorded for it."""
    zone = ZoneInfo(task.timezone) if task.timezone else None
    local_now = now.astimezone(zone) if zone else now
    today = local_now.date()
    attempts = [_local_day(record.at, zone) for record in history]
    conversations = [_local_day(record.at, zone) for record in history if record.connected]
    rules = cast(Mapping[str, RegimeRules], REGIMES).get(task.regime or "")
    refusal = None
    if rules is not None:
        requested = task.call_back_at is not None
        refusal = regime_call_limit_reason(rules, attempts, conversations, today, requested=requested)
    if refusal is None and not _in_window(task, local_now):
        refusal = "outside_window"
    return CallLimits(
        regime=task.regime or "",
        attempts_today=attempts.count(today),
        connected_today=conversations.count(today),
        attempts_7_days=sum(0 <= (today - day).days < 7 for day in attempts),
        rules=rules,
        refusal=refusal,
    )


async def offered_tasks(
    queue: WorkQueue, client: Client, now: datetime, *, limit: int = 50, offset: int = 0
) -> list[OfferedTask]:
    """A page of the queue in priority order, each task with its limits and whether it is offered.
    Tasks of accounts that no longer need a call are closed or hidden (see the module's docstring)."""
    tasks = await asyncio.to_thread(queue.open_tasks, now, limit, offset)
    if not tasks:
        return []
    stages = await _running_stages(client, [task.account_id for task in tasks])
    kept: list[CallTask] = []
    for task in tasks:
        stage = stages.get(task.account_id)
        if task.account_id not in stages:
            await asyncio.to_thread(queue.close_for_account, task.account_id, "account ended", now)
        elif stage == Stage.PHONE:
            kept.append(task)
        elif _utc(task.created_at) < now - VISIBILITY_LAG:
            why = f"account left the phone stage ({stage})"
            await asyncio.to_thread(queue.close_for_account, task.account_id, why, now)
    since = now - timedelta(days=HISTORY_DAYS)
    history = await asyncio.to_thread(queue.call_history, [task.account_id for task in kept], since)
    return [
        OfferedTask(
            task=task,
            days_past_due=None if task.due_date is None else _days_past_due(task, now),
            limits=call_limits(task, history.get(task.account_id, []), now),
            claimed=task.claimed_until is not None and _utc(task.claimed_until) > now,
        )
        for task in kept
    ]


async def claim_task(
    queue: WorkQueue, client: Client, task_id: int, agent: str, now: datetime, lease: timedelta
) -> CallTask:
    """Claim a task for ``agent``, after the account itself and the limits say the call may be made;
    ``TaskUnavailable`` says why not."""
    task = await asyncio.to_thread(queue.get, task_id)
    if task is None or task.closed_at is not None:
        raise TaskUnavailable(f"task {task_id} is no longer open")
    status = await account_status(client, task.account_id)
    if status.stage != Stage.PHONE:
        await asyncio.to_thread(queue.close_for_account, task.account_id, f"account is {status.stage}", now)
        raise TaskUnavailable(f"the account no longer needs a call: it is {status.stage}")
    since = now - timedelta(days=HISTORY_DAYS)
    history = await asyncio.to_thread(queue.call_history, [task.account_id], since)
    limits = call_limits(task, history.get(task.account_id, []), now)
    if limits.refusal is not None:
        raise TaskUnavailable(f"a call now would break the call limits ({limits.refusal})")
    return await asyncio.to_thread(queue.claim, task_id, agent, now, lease)


async def record_call_outcome(
    queue: WorkQueue, client: Client, task_id: int, agent: str, outcome: CallOutcome, now: datetime
) -> AccountStatus:
    """Send the call's outcome to the account as an update; once it is accepted, close the task.
    A refusal (``kindly.errors.ActionRefusedError``) leaves the task claimed, for another try.

    Once the account took the outcome it stands, whatever the task row says by then: the account may
    already have added its next task (a no-answer's next attempt goes at once), which closed this one as
    superseded, or the lease may have run out while the update waited for a worker."""
    held = await asyncio.to_thread(queue.held_by, agent, now)
    if held is None or held.id != task_id:
        raise TaskUnavailable(f"you do not hold task {task_id}: claim it first")
    status = await act_on_account(client, held.account_id, SignalName.CALL_OUTCOME, outcome)
    try:
        await asyncio.to_thread(queue.record_outcome, task_id, agent, str(outcome.outcome), now)
    except TaskUnavailable as err:
        logger.warning(
            "call task %s: the account took the outcome, but the task was not closed: %s", task_id, err
        )
    return status


async def _running_stages(client: Client, account_ids: Sequence[str]) -> dict[str, str | None]:
    """The published stage of each account whose run is open (an ended account is absent)."""
    ids = ", ".join(f'"{workflow_id_for(account_id)}"' for account_id in set(account_ids))
    query = f'WorkflowId IN ({ids}) AND ExecutionStatus = "Running"'
    stages: dict[str, str | None] = {}
    async for execution in client.list_workflows(query):
        account_id = execution.id.removeprefix(WORKFLOW_ID_PREFIX)
        stages[account_id] = execution.typed_search_attributes.get(COLLECTION_STAGE)
    return stages


def _in_window(task: CallTask, local_now: datetime) -> bool:
    """Whether the customer's clock is inside the task's call window (a task without one: always)."""
    if task.window_start is None or task.window_end is None:
        return True
    return task.window_start <= local_now.time().replace(tzinfo=None) < task.window_end


def _days_past_due(task: CallTask, now: datetime) -> int:
    assert task.due_date is not None
    zone = ZoneInfo(task.timezone) if task.timezone else None
    today = now.astimezone(zone).date() if zone else now.date()
    return max((today - task.due_date).days, 0)


def _local_day(at: datetime, zone: ZoneInfo | None) -> date:
    return _utc(at).astimezone(zone).date() if zone else _utc(at).date()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
