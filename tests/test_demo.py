"""The ``make run`` demo does what the README says: a reminder at each point of the cadence, a night-time
account whose timeline shows why it waits for the morning, an account for the phone queue, and console
users to log in with."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.domain.roles import Role
from kindly.programs.demo import DEMO_ZONES, demo_accounts
from kindly.programs.demo_users import DEMO_ROLES, ensure_demo_users
from kindly.programs.operations import account_status, account_timeline
from kindly.settings import Settings
from kindly.store import make_engine
from kindly.store.users import UserStore
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


def test_the_demo_makes_one_console_user_per_role_once(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kindly.db'}")
    logins = tmp_path / ".data" / "console-logins.txt"
    shown = ensure_demo_users(engine, logins)
    assert shown is not None and logins.read_text(encoding="utf-8") == shown
    assert stat.S_IMODE(logins.stat().st_mode) == 0o600, "the passwords are the owner's only"
    users = {user.name: user.role for user in UserStore(engine).all()}
    assert users == {f"demo-{role}": role for role in DEMO_ROLES}
    name, _, password = shown.splitlines()[0].split()
    assert UserStore(engine).login(name, password).role is Role.SUPERVISOR
    assert ensure_demo_users(engine, logins) is None, "a database with users is left alone"


def test_one_demo_account_is_for_the_phone_queue() -> None:
    [phone] = [account for account in demo_accounts() if account.account_id.endswith("-PHONE")]
    assert phone.due_date < datetime.now(UTC).astimezone(ZoneInfo(phone.timezone)).date()
