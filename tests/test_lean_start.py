"""A run that begins on this code is lean (patch ``lean-start``): what it costs Temporal, from its history."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.inputs import PrepareAccountInput, PreparedAccount, RecordDecisionsInput
from kindly.codec import data_converter
from kindly.domain.contract import AccountStatus, Stage
from kindly.domain.policy.model import load_policies, policy_for
from kindly.domain.search_attributes import ensure_search_attributes
from kindly.keyring import load_keyring
from kindly.programs.dev_server import bundled_binary
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from tests.conftest import eventually
from tests.lifecycle_helpers import after_first_reminder, make_account, timeline
from workflows.overdue_account import OverdueAccountWorkflow

CHANGE_VERSION = "TemporalChangeVersion"


def _by_workflow_task(events: list[HistoryEvent]) -> list[list[HistoryEvent]]:
    """The commands' events grouped by the workflow task that made them (in history order)."""
    groups: list[list[HistoryEvent]] = []
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            groups.append([])
        elif groups:
            groups[-1].append(event)
    return groups


def _marker_data(event: HistoryEvent) -> dict[str, Any]:
    """The SDK core's own marker details (plain JSON, never through the codec)."""
    details = event.marker_recorded_event_attributes.details
    payload = details["patch-data" if "patch-data" in details else "data"].payloads[0]
    data: dict[str, Any] = json.loads(payload.data)
    return data


def _is_change_version_upsert(event: HistoryEvent) -> bool:
    if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        return False
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    return set(fields) == {CHANGE_VERSION}


async def test_a_new_run_writes_one_version_marker_and_prepares_with_one_local_activity(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    handle = await after_first_reminder(env, client, settings.task_queue)
    events = [event async for event in handle.fetch_history_events()]

    marker_data = [
        (e.marker_recorded_event_attributes.marker_name, _marker_data(e))
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    patches = [data["id"] for name, data in marker_data if name == "core_patch"]
    assert patches == ["lean-start"], "the earlier patches are taken as applied, not recorded again"

    first_task = [
        _marker_data(e)["activity_type"]
        for e in _by_workflow_task(events)[0]
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    assert first_task[0] == "prepare_account"
    assert "resolve_policy" not in first_task and "index_phone" not in first_task
    assert sum(1 for e in events if _is_change_version_upsert(e)) == 1, "one per patch the run meets"


async def test_status_answers_from_the_input_while_the_account_is_being_prepared(settings: Settings) -> None:
    release = asyncio.Event()

    @activity.defn(name="prepare_account")
    async def slow_prepare(request: PrepareAccountInput) -> PreparedAccount:
        await release.wait()
        return PreparedAccount(
            policy=policy_for(request.segment, load_policies(settings.policy_file)), opted_out=False
        )

    @activity.defn(name="record_decisions")
    async def record_decisions(request: RecordDecisionsInput) -> int:
        return len(request.records)

    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bundled_binary("temporal"),
        data_converter=data_converter(load_keyring(settings)),
        ui=False,
    )
    try:
        await ensure_search_attributes(environment.client, environment.client.namespace)
        async with Worker(
            environment.client,
            task_queue=settings.task_queue,
            workflows=[OverdueAccountWorkflow],
            activities=[slow_prepare, record_decisions],
        ):
            account = make_account(datetime.now(UTC).date() - timedelta(days=40), timezone="UTC")
            handle = await start_account(environment.client, account, task_queue=settings.task_queue)
            # Answered once the worker heartbeats the task that waits for the local activity.
            early = await handle.query("status", result_type=AccountStatus, rpc_timeout=timedelta(seconds=60))
            assert early.account_id == account.account_id and early.stage == Stage.OVERDUE
            assert early.sms_sent == 0 and early.next_touchpoint_at is None
            assert await handle.query("timeline", rpc_timeout=timedelta(seconds=60)) == []
            release.set()
            await eventually(lambda: timeline(handle), lambda entries: len(entries) > 0)
    finally:
        release.set()
        await environment.shutdown()
