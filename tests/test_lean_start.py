"""A run that begins on this code is lean (patch ``lean-start``): what it costs Temporal, from its history."""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.settings import Settings
from tests.lifecycle_helpers import after_first_reminder

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
