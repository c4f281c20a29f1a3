"""CLI list and bulk actions by visibility query, on the real dev server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from kindly.settings import Settings
from kindly.temporal import start_account
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
