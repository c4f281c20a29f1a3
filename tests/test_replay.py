"""Replay stored histories with the current workflow code: a non-deterministic change fails the build.

Histories are captured by ``python -m tests.capture_histories`` and never edited: ``1.0-*`` is the
baseline every later version must replay. When a change must alter what running accounts do, put it
behind ``workflow.patched`` so these still replay (``docs/versioning.md``).

The replayer uses the worker's data converter, codec included (with the histories' test keys in
``tests/histories/keys.json``): a history must decode exactly as a worker would decode it.
"""

from __future__ import annotations

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


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_stored_history_replays_with_current_code(path: Path) -> None:
    replayer = Replayer(workflows=[OverdueAccountWorkflow], data_converter=history_converter())
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"
