"""The ``make run`` demo portfolio does what the README says: a reminder at each point of the cadence, and
a night-time account whose timeline shows why it waits for the morning."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.programs.demo import DEMO_ZONES, demo_accounts
from kindly.programs.operations import account_status, account_timeline
from kindly.settings import Settings
from tests.conftest import eventually
from tests.lifecycle_helpers import start


def test_every_hour_of_the_day_has_a_night_time_demo_account() -> None:
    for hour in range(24):
        now = datetime(2026, 12, 7, hour, 30, tzinfo=UTC)
        [night] = [account for account in demo_accounts(now) if account.account_id.endswith("-NIGHT")]
        local_hour = now.astimezone(ZoneInfo(night.timezone)).hour
        assert not 8 <= local_hour < 21, (hour, night.timezone, local_hour)
        assert night.timezone in DEMO_ZONES


async def test_the_night_time_account_shows_its_deferral(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    now = await env.get_current_time()
    [night] = [account for account in demo_accounts(now) if account.account_id.endswith("-NIGHT")]
    await start(client, settings.task_queue, night)

    entries = await eventually(
        lambda: account_timeline(client, night.account_id),
        lambda found: any(entry.kind == "deferred" for entry in found),
    )
    [deferred] = [entry for entry in entries if entry.kind == "deferred"]
    local_today = now.astimezone(ZoneInfo(night.timezone)).date()
    assert deferred.detail.startswith("sms D+1 deferred"), deferred
    assert f"({local_today.isoformat()} " in deferred.detail, "its own night is named"
    status = await account_status(client, night.account_id)
    at = status.next_touchpoint_at
    assert at is not None
    assert at.utcoffset() == at.astimezone(ZoneInfo(night.timezone)).utcoffset(), "in the customer's offset"
    assert at.isoformat() in deferred.detail, "the timeline names the same moment"
