"""A misspelt signal name is recorded as rejected, and the account carries on."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import Outcome, TimelineKind
from kindly.settings import Settings
from tests.conftest import eventually
from tests.lifecycle_helpers import local_today, make_account, start, timeline


async def test_an_unknown_signal_is_rejected_by_name(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    handle = await start(
        client, settings.task_queue, make_account(await local_today(env) + timedelta(days=3))
    )
    await handle.signal("pasue", {"reason": "typo"})
    entries = await eventually(
        lambda: timeline(handle), lambda t: TimelineKind.SIGNAL_REJECTED in [e.kind for e in t]
    )
    rejected = next(e for e in entries if e.kind is TimelineKind.SIGNAL_REJECTED)
    assert "unknown signal 'pasue'" in rejected.detail and "pause" in rejected.detail
    await handle.signal("settle", {"amount": "1000.00", "reference": "SET-1"})
    assert (await handle.result()).outcome is Outcome.SETTLED
