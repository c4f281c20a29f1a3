"""Two years of weekly reminders in one account: the workflow continues as new and loses nothing.

The run is forced to continue as new every ~100 history events (``continue_as_new_after_events``)
so that a two-year life crosses many runs. The segment's cadence asks for a follow-up every 5 days
while the cap allows one SMS in 7: the cap decides every send, so a run that forgot the send days it
inherited would text early and break the cap, which the test would see.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import Outcome, TimelineEntry, TimelineKind
from kindly.programs.temporal import ensure_search_attributes
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from tests.conftest import eventually, sms_requests
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import local_today, make_account, start, status, timeline

LONG_LIFE_POLICY: dict[str, dict[str, Any]] = {
    "long_life": {
        "holiday_calendar": None,
        "avoid_birthday": False,
        "follow_up_interval_days": 5,
        "max_sms_per_7_days": 1,
        "unanswered_to_escalate": 1000,
        "instalment_offer_after_days": None,
        "pre_due_days": [],
    }
}
TWO_YEARS = timedelta(days=730)


def sent_days(entries: list[TimelineEntry]) -> list[date]:
    return [
        datetime.fromisoformat(entry.at).date() for entry in entries if entry.kind == TimelineKind.SMS_SENT
    ]


def windows_of_seven(days: list[date]) -> Iterator[list[date]]:
    for first in days:
        yield [day for day in days if first <= day < first + timedelta(days=7)]


async def test_two_years_of_weekly_reminders_continue_as_new_and_keep_state_and_caps(
    env: WorkflowEnvironment, settings: Settings, gateway: RecordingHttpServer, tmp_path: Path
) -> None:
    policy_file = tmp_path / "long_life.json"
    policy_file.write_text(json.dumps(LONG_LIFE_POLICY))
    long_life = settings.model_copy(update={"policy_file": policy_file, "continue_as_new_after_events": 100})
    await ensure_search_attributes(env.client, env.client.namespace)
    today = await local_today(env)
    account = make_account(today - timedelta(days=1), segment="long_life", amount_due=Decimal("5000.00"))
    async with build_worker(env.client, long_life) as worker, worker:
        handle = await start(env.client, long_life.task_queue, account)
        await env.sleep(timedelta(days=1))
        await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
        first_run_id = handle.result_run_id

        await env.sleep(TWO_YEARS / 2)
        await handle.signal("repayment", {"amount": "1200.00", "reference": "PAY-HALFWAY"})
        await env.sleep(TWO_YEARS / 2)
        current = await status(handle)
        entries = await timeline(handle)

        # Roughly one reminder a week for two years, each in its own 7-day window.
        days = sent_days(entries)
        assert current.sms_sent == len(days)
        assert 100 <= len(days) <= 106, len(days)
        assert all(len(window) == 1 for window in windows_of_seven(days)), "the 1-in-7 cap held"
        gaps = {(later - earlier).days for earlier, later in itertools.pairwise(days)}
        assert gaps == {7}, f"every follow-up waited for the cap, never less: {gaps}"

        # Many runs, one account: the state crossed every continue-as-new.
        continued = [entry for entry in entries if entry.kind == TimelineKind.CONTINUED_AS_NEW]
        assert len(continued) >= 10
        assert current.amount_due == Decimal("3800.00")
        first_run = env.client.get_workflow_handle(handle.id, run_id=first_run_id)
        last_event = None
        async for event in first_run.fetch_history_events():
            last_event = event
        assert last_event is not None
        assert last_event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW

        # Every touchpoint went out once, under one idempotency key each, across all runs.
        keys = [message["idempotency_key"] for message in sms_requests(gateway)]
        assert len(keys) == len(days) == len(set(keys))

        # The opt-out crosses runs too: after STOP only the confirmation goes, then no SMS, however
        # many runs later (replies grow the history until it continues as new again).
        await handle.signal("customer_reply", {"text": "STOP"})
        await env.sleep(timedelta(days=1))  # confirmed in the service window, maybe next morning
        await eventually(lambda: status(handle), lambda s: s.sms_sent == len(days) + 1)
        for n in range(40):
            await handle.signal("customer_reply", {"text": f"thanks {n}"})
        await eventually(
            lambda: timeline(handle),
            lambda t: [e.kind for e in t].count(TimelineKind.CONTINUED_AS_NEW) > len(continued),
        )
        await env.sleep(timedelta(days=60))
        assert (await status(handle)).sms_sent == len(days) + 1, "one opt-out confirmation, then no SMS"

        await handle.signal("repayment", {"amount": "3800.00", "reference": "PAY-LAST"})
        result = await handle.result()
        assert result.outcome is Outcome.REPAID
        assert result.amount_collected == Decimal("5000.00")
