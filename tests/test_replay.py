"""Replay stored histories with the current workflow code: a non-deterministic change fails the build.

Histories are captured by ``python -m tests.capture_histories`` and never edited: ``1.0-*`` is the
baseline every later version must replay. When a change must alter what running accounts do, put it
behind ``workflow.patched`` so these still replay (``docs/versioning.md``).

The replayer uses the worker's data converter, codec included (with the histories' test keys in
``tests/histories/keys.json``): a history must decode exactly as a worker would decode it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.capture_histories import KEYS_FILE, history_converter
from workflows.overdue_account import OverdueAccountWorkflow

HISTORIES = sorted(path for path in KEYS_FILE.parent.glob("*.json") if path != KEYS_FILE)


def test_the_baseline_histories_are_stored() -> None:
    baseline = {path.stem for path in HISTORIES if path.stem.startswith("1.0-")}
    assert {
        "1.0-escalation",
        "1.0-long_life",
        "1.0-long_life-last_run",
        "1.0-stale_send_cancelled",
    } <= baseline


def test_histories_of_the_1_1_rules_are_stored() -> None:
    """Runs since the ``kindly-1.1`` patch (its marker first) and operator actions as updates."""
    stems = {path.stem: path for path in HISTORIES}
    assert {"1.1-escalation", "1.1-night_start", "1.1-operator_updates", "1.1-experiment_shadow"} <= set(
        stems
    )
    for stem in ("1.1-night_start", "1.1-operator_updates"):
        events = json.loads(stems[stem].read_text(encoding="utf-8"))["events"]
        markers = [
            e["markerRecordedEventAttributes"]["markerName"]
            for e in events
            if "markerRecordedEventAttributes" in e
        ]
        assert markers[0] == "core_patch", stem
    updates = json.loads(stems["1.1-operator_updates"].read_text(encoding="utf-8"))["events"]
    accepted = [e for e in updates if "workflowExecutionUpdateAcceptedEventAttributes" in e]
    assert len(accepted) == 4, "pause, resume, payment, settlement; the refused pause left nothing"
    shadow = json.loads(stems["1.1-experiment_shadow"].read_text(encoding="utf-8"))["events"]
    upserts = [
        e["upsertWorkflowSearchAttributesEventAttributes"]
        for e in shadow
        if "upsertWorkflowSearchAttributesEventAttributes" in e
    ]
    assert any("ExperimentArm" in u["searchAttributes"]["indexedFields"] for u in upserts), (
        "an account in an arm"
    )


def _activities(stem: str) -> list[str]:
    events = json.loads((KEYS_FILE.parent / f"{stem}.json").read_text(encoding="utf-8"))["events"]
    return [
        e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in events
        if "activityTaskScheduledEventAttributes" in e
    ]


def test_histories_of_the_1_2_rules_are_stored() -> None:
    """Runs since the ``kindly-1.2`` patch: a call-back, and a specialists' account handed back."""
    stems = {path.stem for path in HISTORIES}
    assert {"1.2-escalation", "1.2-operator_updates", "1.2-call_back", "1.2-specialist_hand_back"} <= stems
    events = json.loads((KEYS_FILE.parent / "1.2-night_start.json").read_text(encoding="utf-8"))["events"]
    markers = [e for e in events if "markerRecordedEventAttributes" in e][:2]
    assert [m["markerRecordedEventAttributes"]["markerName"] for m in markers] == ["core_patch"] * 2
    # The call-back is the second call task; unanswered, the account then goes to the specialists.
    assert _activities("1.2-call_back")[-3:] == [
        "create_call_task",
        "create_call_task",
        "hand_off_to_specialist",
    ]
    # Handed back, the account's cadence sends again.
    assert _activities("1.2-specialist_hand_back") == ["send_sms", "hand_off_to_specialist", "send_sms"]


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_stored_history_replays_with_current_code(path: Path) -> None:
    replayer = Replayer(workflows=[OverdueAccountWorkflow], data_converter=history_converter())
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"
