"""A day the holiday calendar has no data for is not taken for a working day: the touch waits
(``no_calendar``), the timeline and status say so, and a policy refresh that brings the year lets it go."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.domain.actions import plan_noted
from kindly.domain.policy.model import ContactPolicy, calendar_years, load_policies
from kindly.domain.policy.schedule import Deferral, StepKind, plan_next
from kindly.domain.status import account_status
from kindly.errors import ConfigurationError
from kindly.programs.operations import account_status as query_status
from kindly.programs.operations import account_timeline
from kindly.settings import Settings
from tests.conftest import eventually
from tests.lifecycle_helpers import make_account, start
from tests.test_schedule import local, make_state

COVERED = ContactPolicy(holiday_calendar="cn", holiday_calendar_years=(2026, 2027))
DUE_2028 = date(2028, 1, 20)  # its D-7 reminder falls on 13 January 2028


def test_a_touch_in_a_year_without_data_waits_with_no_calendar() -> None:
    state = make_state(due=DUE_2028, policy=COVERED, started_on=date(2027, 12, 1))
    now = local(date(2027, 12, 20), 10)
    step = plan_next(state, now)
    assert step.kind is StepKind.SMS and step.at is None and step.touch_key == "D-7"
    assert step.deferrals == (Deferral("no_calendar", date(2028, 1, 13)),)
    assert step.waiting_for == "no_calendar"

    noted = plan_noted(state, step, now)
    [entry] = noted.entries
    assert entry.kind == "deferred" and "(2028-01-13 no_calendar)" in entry.detail
    assert "no holiday data for 2028" in entry.detail
    status = account_status(noted.state, now)
    assert status.next_touchpoint_at is None
    assert status.next_step is not None and status.next_step.waiting_for == "no_calendar"


def test_the_year_added_by_a_refresh_lets_the_touch_go() -> None:
    refreshed = COVERED.model_copy(update={"holiday_calendar_years": (2026, 2027, 2028)})
    state = make_state(due=DUE_2028, policy=refreshed, started_on=date(2027, 12, 1))
    step = plan_next(state, local(date(2027, 12, 20), 10))
    assert step.at is not None and step.at.date() == date(2028, 1, 13)


def test_a_run_recorded_before_the_check_plans_as_it_did() -> None:
    legacy = COVERED.model_copy(update={"holiday_calendar_years": None})
    step = plan_next(
        make_state(due=DUE_2028, policy=legacy, started_on=date(2027, 12, 1)), local(date(2027, 12, 20), 10)
    )
    assert step.at is not None and not step.deferrals


def test_the_worker_stamps_the_years_it_has_and_policy_files_cannot(tmp_path: Path) -> None:
    policies = load_policies(None)
    assert policies["standard"].holiday_calendar_years == calendar_years(policies["standard"])
    assert 2026 in (policies["standard"].holiday_calendar_years or ())
    path = tmp_path / "policies.json"
    path.write_text('{"vip": {"holiday_calendar_years": [2026, 2027, 2028]}}')
    with pytest.raises(ConfigurationError, match="holiday_calendar_years is set by the worker"):
        load_policies(path)


async def test_an_account_due_past_the_data_waits_and_says_so(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    years = load_policies(None)["standard"].holiday_calendar_years or ()
    first_missing = max(years) + 1
    account = make_account(date(first_missing, 3, 1), segment="standard")
    await start(client, settings.task_queue, account)
    entries = await eventually(
        lambda: account_timeline(client, account.account_id),
        lambda found: any("no_calendar" in entry.detail for entry in found),
    )
    assert any(f"no holiday data for {first_missing}" in entry.detail for entry in entries)
    status = await query_status(client, account.account_id)
    assert status.next_touchpoint_at is None and status.next_step is not None
    assert status.next_step.waiting_for == "no_calendar" and status.next_step.kind == "sms"
    assert date(first_missing, 3, 1) - timedelta(days=7) > date(max(years), 12, 31)
