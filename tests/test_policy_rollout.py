"""Rolling a policy change out to accounts in flight: deploy the new policy file, then signal
``refresh_policy``; until then an account keeps the policy it started with."""

from __future__ import annotations

import json
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import TimelineKind
from kindly.programs.temporal import ensure_search_attributes
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from tests.conftest import TEST_POLICIES, eventually
from tests.lifecycle_helpers import local_today, make_account, start, status, timeline


async def test_an_account_keeps_its_policy_until_told_to_refresh(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    assert settings.policy_file is not None
    await ensure_search_attributes(env.client, env.client.namespace)
    today = await local_today(env)
    account = make_account(today - timedelta(days=1))
    # No sticky cache on the first worker: the test server would route the next task to the stopped
    # worker's sticky queue until it times out.
    uncached = settings.model_copy(update={"max_cached_workflows": 0})
    async with build_worker(env.client, uncached) as worker, worker:
        handle = await start(env.client, settings.task_queue, account)
        await env.sleep(timedelta(days=1))
        await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)

    # A deploy with a new policy file: follow-ups every 2 days instead of 7.
    faster = {**TEST_POLICIES, "plain": {"holiday_calendar": None, "follow_up_interval_days": 2}}
    settings.policy_file.write_text(json.dumps(faster))
    async with build_worker(env.client, settings) as worker, worker:
        await env.sleep(timedelta(days=3))
        assert (await status(handle)).sms_sent == 1, "without the signal the account keeps its policy"

        await handle.signal("refresh_policy", {"reason": "CHG-42 faster follow-ups"})
        entries = await eventually(
            lambda: timeline(handle), lambda t: TimelineKind.POLICY_REFRESHED in [e.kind for e in t]
        )
        refreshed = next(e for e in entries if e.kind == TimelineKind.POLICY_REFRESHED)
        assert "follow_up_interval_days" in refreshed.detail and "CHG-42" in refreshed.detail
        await env.sleep(timedelta(days=1))
        await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)

        await handle.signal("refresh_policy", {"reason": 42})
        entries = await eventually(
            lambda: timeline(handle), lambda t: TimelineKind.SIGNAL_REJECTED in [e.kind for e in t]
        )
        rejected = next(e for e in entries if e.kind == TimelineKind.SIGNAL_REJECTED)
        assert "reason" in rejected.detail
