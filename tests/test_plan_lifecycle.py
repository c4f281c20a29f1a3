"""An instalment plan's life in the real workflow on the time-skipping server: kept to the end (a reminder
before each instalment, then repaid), missed (broken after its grace, the firmer message, back to the
cadence), and partly paid (credited, and still broken when the rest does not come)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import Outcome, TimelineKind
from kindly.settings import Settings
from tests.conftest import eventually, sms_requests
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import kinds, local_today, make_account, start, status, timeline


async def on_a_plan(env: WorkflowEnvironment, client: Client, settings: Settings) -> WorkflowHandle[Any, Any]:
    """An account 10 days overdue whose customer chose 3 instalments of 500.00, the first in 3 days."""
    today, started = await local_today(env), await env.get_current_time()
    handle = await start(client, settings.task_queue, make_account(today - timedelta(days=10)))
    # Inside the send window the first reminder goes at once: let it go before the plan is chosen, so
    # that every later send is the plan's (outside the window, it waits for a later touchpoint).
    await eventually(
        lambda: status(handle),
        lambda s: s.sms_sent == 1 or (s.next_touchpoint_at is not None and s.next_touchpoint_at > started),
    )
    first = today + timedelta(days=3)
    await handle.signal("self_service", {"choice": "plan", "instalments": 3, "date": first.isoformat()})
    current = await eventually(lambda: status(handle), lambda s: s.plan is not None)
    assert current.plan is not None and [each.amount for each in current.plan.instalments] == [500] * 3
    return handle


def templates(gateway: RecordingHttpServer) -> list[str]:
    return [request["template"] for request in sms_requests(gateway)]


async def test_a_plan_kept_to_the_end_is_the_account_repaid(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    handle = await on_a_plan(env, client, settings)
    before = len(templates(gateway))
    for number in range(1, 4):
        await env.sleep(timedelta(days=3 if number == 1 else 30))
        reminded = await eventually(lambda: _async(templates(gateway)), _reminders(number))
        assert reminded.count("instalment_due") == number
        await handle.signal("repayment", {"amount": "500.00", "reference": f"INST-{number}"})
    result = await handle.result()
    assert result.outcome is Outcome.REPAID
    sent = templates(gateway)[before:]
    assert sent == ["instalment_due"] * 3, "only the plan's reminders: no overdue cadence while it ran"


async def test_a_missed_instalment_breaks_the_plan_and_the_cadence_resumes_firmer(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    handle = await on_a_plan(env, client, settings)
    await env.sleep(timedelta(days=3 + 3 + 2))  # past the first instalment and its 3 days' grace
    broken = await eventually(
        lambda: status(handle), lambda s: s.plan is not None and s.plan.status == "broken"
    )
    assert broken.plan is not None
    await eventually(lambda: _async(templates(gateway)), lambda sent: "plan_broken" in sent)
    sent = templates(gateway)
    assert sent.index("instalment_due") < sent.index("plan_broken")
    assert TimelineKind.PLAN_BROKEN in kinds(await timeline(handle))
    await env.sleep(timedelta(days=8))
    await eventually(lambda: _async(templates(gateway)), lambda sent: sent[-1] == "follow_up")
    await handle.signal("close", {"reason": "test over"})


async def test_a_partly_paid_instalment_is_credited_and_still_breaks_the_plan(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    handle = await on_a_plan(env, client, settings)
    await env.sleep(timedelta(days=3))
    await handle.signal("repayment", {"amount": "200.00", "reference": "PART-1"})
    part = await eventually(lambda: status(handle), lambda s: s.amount_due == 1300)
    assert part.plan is not None and part.plan.instalments[0].paid == 200
    await env.sleep(timedelta(days=6))
    broken = await eventually(
        lambda: status(handle), lambda s: s.plan is not None and s.plan.status == "broken"
    )
    assert broken.plan is not None and broken.amount_due == 1300
    entries = [entry.detail for entry in await timeline(handle) if entry.kind == TimelineKind.PLAN_BROKEN]
    assert entries and "instalment 1 of 3 (300.00 due" in entries[0]
    await handle.signal("close", {"reason": "test over"})


async def _async(value: Any) -> Any:
    return value


def _reminders(count: int) -> Callable[[list[str]], bool]:
    return lambda sent: sent.count("instalment_due") == count
