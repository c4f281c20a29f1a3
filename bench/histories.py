"""Temporal actions and history events per SMS touchpoint, counted from workflow histories.

Actions are what Temporal Cloud bills, counted from history by its published rules (docs.temporal.io,
"Temporal Cloud Actions"): each activity scheduled or retried, timer started, signal, search-attribute
upsert, memo change, child workflow and continue-as-new is one; an upsert of ``TemporalChangeVersion``
alone (the SDK's companion of every new ``workflow.patched``) is exempt, and so are search attributes
given with the start; all the markers one workflow task records (local activities, ``core_local_activity``;
patches, ``core_patch``) count as one action together. The workflow start is reported apart (once per
account, however many touchpoints), and so is what the workflow task that begins the run spends once:
Kindly's preparation (one local activity's marker) and the upsert of its first next touchpoint.
Markers and exempt upserts are also reported one by one, so the
raw command counts stay visible.
History bytes are the size of the serialized history (the ``History`` protobuf of the events up to
the cut, payloads as stored: Kindly's encrypted), which is what the server stores and replays.
A history is cut after its n-th touchpoint: at the first event after the n-th SMS activity completed
that puts the workflow to sleep again (its timer started) or ends it, so that one touchpoint's
cost includes planning the next one, for Kindly and the baseline alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History, HistoryEvent

ACTION_EVENTS: dict[int, str] = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activities",
    EventType.EVENT_TYPE_TIMER_STARTED: "timers",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signals",
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: "signals",
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED: "memo_upserts",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "child_workflows",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continue_as_new",
}
ACTION_KINDS: tuple[str, ...] = (
    "activities",
    "timers",
    "signals",
    "search_attribute_upserts",
    "memo_upserts",
    "child_workflows",
    "continue_as_new",
    "marker_workflow_tasks",
)
_SLEEP_OR_END = {
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}
LOCAL_ACTIVITY_MARKER = "core_local_activity"
CHANGE_VERSION = "TemporalChangeVersion"


@dataclass
class Cost:
    """What some touchpoints cost in history: actions by kind, markers by name, events."""

    touchpoints: int = 0
    histories: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    markers: Counter[str] = field(default_factory=Counter)
    workflow_starts: int = 0
    start_actions: int = 0
    start_by_kind: Counter[str] = field(default_factory=Counter)
    """What a run spends once, in the workflow task its start began: markers (Kindly's preparation, one
    local activity) and an upsert (its first next touchpoint). Counted apart, like the start."""
    activity_retries: int = 0
    events: int = 0
    history_bytes: int = 0
    """Size of the serialized history up to the cut."""
    change_version_upserts: int = 0
    """Upserts of ``TemporalChangeVersion`` alone: the SDK adds one to each new ``workflow.patched``;
    not an action."""

    def add(self, other: Cost) -> None:
        self.touchpoints += other.touchpoints
        self.histories += other.histories
        self.actions.update(other.actions)
        self.markers.update(other.markers)
        self.workflow_starts += other.workflow_starts
        self.start_actions += other.start_actions
        self.start_by_kind.update(other.start_by_kind)
        self.activity_retries += other.activity_retries
        self.events += other.events
        self.history_bytes += other.history_bytes
        self.change_version_upserts += other.change_version_upserts

    def minus(self, other: Cost) -> Cost:
        """The cost of the touchpoints in ``self`` beyond those of ``other`` (the same histories)."""
        return Cost(
            touchpoints=self.touchpoints - other.touchpoints,
            histories=self.histories,
            actions=Counter({k: self.actions[k] - other.actions[k] for k in ACTION_KINDS}),
            markers=Counter({k: self.markers[k] - other.markers[k] for k in self.markers}),
            workflow_starts=self.workflow_starts - other.workflow_starts,
            start_actions=self.start_actions - other.start_actions,
            start_by_kind=Counter({k: self.start_by_kind[k] - other.start_by_kind[k] for k in ACTION_KINDS}),
            activity_retries=self.activity_retries - other.activity_retries,
            events=self.events - other.events,
            history_bytes=self.history_bytes - other.history_bytes,
            change_version_upserts=self.change_version_upserts - other.change_version_upserts,
        )

    @property
    def total_actions(self) -> int:
        """Every action kind of ``ACTION_KINDS`` (activity retries included), the start and what its first
        workflow task spends once (``start_actions``) not."""
        return sum(self.actions[kind] for kind in ACTION_KINDS) + self.activity_retries - self.start_actions

    def per_touchpoint(self) -> dict[str, object]:
        n = max(self.touchpoints, 1)
        local = self.markers[LOCAL_ACTIVITY_MARKER]
        other_markers = {
            name: count / n for name, count in self.markers.items() if name != LOCAL_ACTIVITY_MARKER
        }
        return {
            "touchpoints": self.touchpoints,
            "histories": self.histories,
            "actions_per_touchpoint": round(self.total_actions / n, 3),
            "actions_per_touchpoint_incl_start": round(
                (self.total_actions + self.workflow_starts + self.start_actions) / n, 3
            ),
            "start_actions_per_run": round(self.start_actions / max(self.histories, 1), 3),
            "actions_by_kind_per_touchpoint": {
                kind: round((self.actions[kind] - self.start_by_kind[kind]) / n, 3) for kind in ACTION_KINDS
            },
            "exempt_temporal_change_version_upserts_per_touchpoint": round(
                self.change_version_upserts / n, 3
            ),
            "activity_retries_per_touchpoint": round(self.activity_retries / n, 3),
            "workflow_starts_per_touchpoint": round(self.workflow_starts / n, 3),
            "local_activity_markers_per_touchpoint": round(local / n, 3),
            "other_markers_per_touchpoint": {name: round(value, 3) for name, value in other_markers.items()},
            "history_events_per_touchpoint": round(self.events / n, 3),
            "history_bytes_per_touchpoint": round(self.history_bytes / n, 1),
        }


def cut_after_touchpoint(
    events: Sequence[HistoryEvent], touchpoints: int, sms_activities: Iterable[str]
) -> list[HistoryEvent] | None:
    """The history up to the moment it sleeps (or ends) after its ``touchpoints``-th SMS completed;
    ``None`` when it has not got that far yet."""
    names = set(sms_activities)
    sms_scheduled: set[int] = set()
    completed = 0
    for index, event in enumerate(events):
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name in names:
                sms_scheduled.add(event.event_id)
        elif (
            event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            and event.activity_task_completed_event_attributes.scheduled_event_id in sms_scheduled
        ):
            completed += 1
            if completed == touchpoints:
                for end in range(index + 1, len(events)):
                    if events[end].event_type in _SLEEP_OR_END:
                        return list(events[: end + 1])
                return None  # the workflow has not planned its next touchpoint yet
    return None


def cost_of(events: Sequence[HistoryEvent], touchpoints: int) -> Cost:
    cost = Cost(
        touchpoints=touchpoints,
        histories=1,
        events=len(events),
        history_bytes=History(events=list(events)).ByteSize(),
    )
    marker_tasks: set[int] = set()
    first_task = _first_task_commands(events)
    for event in events:
        kind = ACTION_EVENTS.get(event.event_type)
        if kind is not None:
            cost.actions[kind] += 1
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            cost.workflow_starts += 1
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            attributes = event.marker_recorded_event_attributes
            cost.markers[attributes.marker_name] += 1
            marker_tasks.add(attributes.workflow_task_completed_event_id)
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if set(fields) == {CHANGE_VERSION}:
                cost.change_version_upserts += 1
            else:
                cost.actions["search_attribute_upserts"] += 1
                if (
                    event.upsert_workflow_search_attributes_event_attributes.workflow_task_completed_event_id
                    == (first_task)
                ):
                    cost.start_actions += 1
                    cost.start_by_kind["search_attribute_upserts"] += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            cost.activity_retries += max(event.activity_task_started_event_attributes.attempt - 1, 0)
    cost.actions["marker_workflow_tasks"] = len(marker_tasks)
    if first_task in marker_tasks:
        cost.start_actions += 1
        cost.start_by_kind["marker_workflow_tasks"] += 1
    return cost


def _first_task_commands(events: Sequence[HistoryEvent]) -> int | None:
    """The id the first workflow task's commands name as theirs (``workflow_task_completed_event_id``;
    servers differ in whether it is the task's completed or started event, so it is read, not assumed)."""
    for event in events:
        for attributes in (
            "marker_recorded_event_attributes",
            "upsert_workflow_search_attributes_event_attributes",
            "activity_task_scheduled_event_attributes",
            "timer_started_event_attributes",
        ):
            if event.HasField(attributes):
                task: int = getattr(event, attributes).workflow_task_completed_event_id
                return task
    return None


def describe_events(events: Sequence[HistoryEvent]) -> list[str]:
    """Event type names with marker and activity names: the evidence shown in the report."""
    described = []
    for event in events:
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            name += f"({event.marker_recorded_event_attributes.marker_name})"
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name += f"({event.activity_task_scheduled_event_attributes.activity_type.name})"
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            name += f"({','.join(sorted(fields))})"
        described.append(name)
    return described
