"""The benchmark counts Temporal actions by Temporal Cloud's published rules, from history events."""

from __future__ import annotations

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskScheduledEventAttributes,
    HistoryEvent,
    MarkerRecordedEventAttributes,
    UpsertWorkflowSearchAttributesEventAttributes,
)

from bench.histories import ACTION_KINDS, CHANGE_VERSION, cost_of


def _event(event_type: int, **attributes: object) -> HistoryEvent:
    return HistoryEvent(event_type=event_type, **attributes)  # type: ignore[arg-type]


def _marker(name: str, task: int) -> HistoryEvent:
    return _event(
        EventType.EVENT_TYPE_MARKER_RECORDED,
        marker_recorded_event_attributes=MarkerRecordedEventAttributes(
            marker_name=name, workflow_task_completed_event_id=task
        ),
    )


def _upsert(*names: str, task: int = 0) -> HistoryEvent:
    attributes = UpsertWorkflowSearchAttributesEventAttributes(workflow_task_completed_event_id=task)
    for name in names:
        attributes.search_attributes.indexed_fields[name].CopyFrom(Payload(data=b'"x"'))
    return _event(
        EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        upsert_workflow_search_attributes_event_attributes=attributes,
    )


NO_ACTIONS = dict.fromkeys(ACTION_KINDS, 0.0)
ONE_TOUCHPOINT = {
    "activities": 1.0,
    "timers": 1.0,
    "search_attribute_upserts": 1.0,
    "marker_workflow_tasks": 1.0,
}


def test_markers_of_one_workflow_task_are_one_action_and_change_version_upserts_are_exempt() -> None:
    events = [
        _event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
        _marker("core_patch", task=4),
        _marker("core_local_activity", task=4),
        _upsert(CHANGE_VERSION),
        _upsert("CollectionStage", "NextTouchpointAt"),
        _event(
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(),
        ),
        _marker("core_local_activity", task=10),
        _event(EventType.EVENT_TYPE_TIMER_STARTED),
    ]
    cost = cost_of(events, touchpoints=1)
    assert cost.actions["marker_workflow_tasks"] == 2  # tasks 4 and 10
    assert cost.actions["search_attribute_upserts"] == 1
    assert cost.change_version_upserts == 1
    assert cost.markers == {"core_patch": 1, "core_local_activity": 2}
    # activity + timer + one real upsert + the workflow task with markers after it; the start, and the
    # markers of the task that begins the run (its preparation), apart
    assert cost.start_actions == 1
    assert cost.total_actions == 4
    assert cost.workflow_starts == 1
    assert cost.per_touchpoint()["actions_per_touchpoint"] == 4.0
    assert cost.per_touchpoint()["start_actions_per_run"] == 1.0
    assert cost.per_touchpoint()["actions_by_kind_per_touchpoint"] == {**NO_ACTIONS, **ONE_TOUCHPOINT}


def test_an_upsert_in_the_task_that_begins_the_run_is_spent_once_per_run() -> None:
    events = [
        _event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
        _marker("core_local_activity", task=3),
        _upsert("NextTouchpointAt", task=3),
        _event(EventType.EVENT_TYPE_TIMER_STARTED),
        _event(
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(),
        ),
        _upsert("NextTouchpointAt", task=9),
        _event(EventType.EVENT_TYPE_TIMER_STARTED),
    ]
    cost = cost_of(events, touchpoints=1)
    assert cost.start_actions == 2  # the preparation's marker and the first upsert
    assert cost.total_actions == 4  # two timers, one activity, the upsert after the send
    by_kind = {**NO_ACTIONS, "activities": 1.0, "timers": 2.0, "search_attribute_upserts": 1.0}
    assert cost.per_touchpoint()["actions_by_kind_per_touchpoint"] == by_kind
