"""Experiments as data: definitions checked against the regimes (naming the field), a deterministic
assignment by weight, the store on SQLite and PostgreSQL, and an account that takes its arm as it starts
(history, audit log, ``ExperimentArm``), on the time-skipping server."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.analytics.shadow_volumes import shadow_volumes
from kindly.domain.experiments import (
    Assignment,
    DefinitionError,
    ExperimentDefinition,
    PolicyOverlay,
    assign,
    checked_definition,
    policy_for_arm,
)
from kindly.domain.policy.model import BUILT_IN_POLICIES, ContactPolicy, load_policies
from kindly.domain.state import AccountState
from kindly.programs.experiments import enforce_guardrails, experiment_report
from kindly.programs.operations import account_status, account_timeline
from kindly.settings import Settings
from kindly.store import AuditEntry, AuditStore, make_engine
from kindly.store.experiments import ExperimentConflictError, ExperimentStore
from tests import outcome_stories as story
from tests.conftest import eventually
from tests.databases import database_url  # noqa: F401  (SQLite and PostgreSQL, a fixture)
from tests.lifecycle_helpers import local_today, make_account, start
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)
from tests.test_api import AUTH, Api, api  # noqa: F401  (the API on a real server, a fixture)
from tests.test_cli import kindly
from tests.test_database import engine  # noqa: F401  (a migrated database, a fixture)
from tests.test_effects import make_state


def definition(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "gentle-test",
        "segments": ["standard"],
        "champion": "champion",
        "arms": [
            {"name": "champion", "weight": 1},
            {"name": "gentle", "weight": 1, "overlay": {"tone": "gentle", "follow_up_interval_days": 5}},
        ],
        "guardrails": {"opt_out_per_1000_sms": 20},
    }
    raw.update(overrides)
    return raw


POLICIES = dict(BUILT_IN_POLICIES)


# --- definitions ---------------------------------------------------------------------------------


def test_a_good_definition_is_taken_and_its_overlay_applied() -> None:
    checked = checked_definition(definition(), POLICIES)
    gentle = Assignment(experiment=checked.name, arm="gentle")
    policy = policy_for_arm(checked, gentle, POLICIES["standard"])
    assert (policy.tone, policy.follow_up_interval_days) == ("gentle", 5)
    champion = policy_for_arm(
        checked, Assignment(experiment=checked.name, arm="champion"), POLICIES["standard"]
    )
    assert champion == POLICIES["standard"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Bad Name"}, "name:"),
        ({"champion": "nobody"}, "champion:"),
        ({"segments": ["standard", "nope"]}, "segments.1: unknown segment 'nope'"),
        ({"arms": [{"name": "champion", "weight": 1}]}, "arms: List should have at least 2 items"),
        ({"arms": [{"name": "champion", "weight": 0}, {"name": "b", "weight": 1}]}, "arms.0.weight:"),
        (
            {
                "arms": [
                    {"name": "champion", "weight": 1},
                    {"name": "b", "weight": 1, "overlay": {"cadence": 3}},
                ]
            },
            "arms.1.overlay.cadence: Extra inputs are not permitted",
        ),
        ({"start": "2026-12-01T00:00:00"}, "start: must include a UTC offset"),
    ],
)
def test_a_bad_definition_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        checked_definition(definition(**change), POLICIES)
    assert field in str(refused.value)


def test_an_arm_cannot_break_a_regimes_rule() -> None:
    """Two hours earlier, the cn window would open at 07:00, before the legal 08:00: refused, naming the
    arm, the segment and the rule."""
    early = definition(
        arms=[
            {"name": "champion", "weight": 1},
            {"name": "early", "weight": 1, "overlay": {"window_offset_minutes": -120}},
        ]
    )
    with pytest.raises(DefinitionError) as refused:
        checked_definition(early, POLICIES)
    message = str(refused.value)
    assert (
        message.startswith("arms.1.overlay: in segment 'standard':") and "legal window 08:00-22:00" in message
    )
    later = PolicyOverlay(window_offset_minutes=30).applied_to(POLICIES["standard"])
    assert (later.window_start.hour, later.window_start.minute) == (9, 30)


def test_a_shadow_arm_acts_as_the_champion() -> None:
    raw = definition(
        arms=[
            {"name": "champion", "weight": 1},
            {"name": "faster", "weight": 1, "shadow": True, "overlay": {"follow_up_interval_days": 3}},
        ]
    )
    checked = checked_definition(raw, POLICIES)
    shadow = next(a for i in range(100) if (a := assign(checked, f"ACC-{i}")) is not None and a.shadow)
    assert shadow.shadow_overlay == PolicyOverlay(follow_up_interval_days=3)
    assert policy_for_arm(checked, shadow, POLICIES["standard"]) == POLICIES["standard"]
    with pytest.raises(DefinitionError, match="champion: the champion cannot be a shadow arm"):
        checked_definition({**raw, "champion": "faster"}, POLICIES)


# --- assignment ----------------------------------------------------------------------------------


def test_assignment_is_deterministic_and_follows_the_weights() -> None:
    checked = ExperimentDefinition.model_validate(
        definition(arms=[{"name": "champion", "weight": 3}, {"name": "gentle", "weight": 1}])
    )
    arms = [assign(checked, f"LN-{i:05d}") for i in range(20_000)]
    assert arms == [assign(checked, f"LN-{i:05d}") for i in range(20_000)], "the same every time"
    counts = Counter(a.arm for a in arms if a is not None)
    assert abs(counts["gentle"] / 20_000 - 0.25) < 0.015, counts
    renamed = ExperimentDefinition.model_validate({**checked.model_dump(), "name": "other"})
    moved = sum(assign(renamed, f"LN-{i:05d}") != arms[i] for i in range(2000))
    assert moved > 200, "another experiment shuffles accounts independently"


def test_a_closed_arm_gets_no_new_accounts_and_the_others_share_its_weight() -> None:
    checked = ExperimentDefinition.model_validate(definition())
    arms = [assign(checked, f"LN-{i}", closed_arms={"gentle"}) for i in range(500)]
    assert {a.arm for a in arms if a is not None} == {"champion"}
    assert assign(checked, "LN-1", closed_arms={"gentle", "champion"}) is None


def test_the_assignment_survives_continue_as_new_in_the_state() -> None:
    state = make_state(experiment=Assignment(experiment="gentle-test", arm="gentle"))
    carried = AccountState.model_validate(json.loads(state.model_dump_json()))
    assert carried.experiment == state.experiment


# --- the store -----------------------------------------------------------------------------------


def test_the_store_starts_stops_and_closes_arms(engine: Engine) -> None:  # noqa: F811
    store = ExperimentStore(engine)
    checked = ExperimentDefinition.model_validate(definition())
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    started = store.start(checked, at=now)
    assert started.running and store.running_for("standard", now) is not None
    assert store.running_for("gentle", now) is None
    with pytest.raises(ExperimentConflictError, match="name: an experiment 'gentle-test' exists already"):
        store.start(checked)
    other = ExperimentDefinition.model_validate(definition(name="another"))
    with pytest.raises(ExperimentConflictError, match="segments: standard already in running experiment"):
        store.start(other)

    closed = store.close_arm("gentle-test", "gentle", "opt-outs 25.0 per 1,000 SMS > 20")
    assert closed.closed_arms["gentle"]["reason"].startswith("opt-outs 25.0")
    again = store.close_arm("gentle-test", "gentle", "later")
    assert again.closed_arms == closed.closed_arms, "recorded once"

    stopped = store.stop("gentle-test", "enough data")
    assert not stopped.running and stopped.stop_reason == "enough data"
    assert store.running_for("standard", now) is None
    assert store.start(other).running, "the segment is free again"


# --- a run takes its arm as it starts ------------------------------------------------------------


async def test_an_account_takes_its_arm_as_it_starts(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    raw = definition(
        segments=["plain"],
        arms=[
            {"name": "champion", "weight": 1},
            {"name": "gentle", "weight": 1, "overlay": {"follow_up_interval_days": 5}},
        ],
    )
    checked = checked_definition(raw, load_policies(settings.policy_file))
    database = make_engine(settings.database_url)
    ExperimentStore(database).start(checked, at=datetime.now(UTC) - timedelta(days=1))
    today = await local_today(env)
    account = next(
        a
        for a in (make_account(today + timedelta(days=20), segment="plain") for _ in range(50))
        if (arm := assign(checked, a.account_id)) is not None and arm.arm == "gentle"
    )
    handle = await start(client, settings.task_queue, account)

    timeline = await eventually(
        lambda: account_timeline(client, account.account_id),
        lambda entries: any(entry.kind == "experiment_assigned" for entry in entries),
    )
    assert [e.detail for e in timeline if e.kind == "experiment_assigned"] == [
        "experiment gentle-test arm gentle"
    ]
    audited = {entry.kind: entry.detail for entry in AuditStore(database).audit_for(account.account_id)}
    assert audited["experiment_assigned"] == "experiment gentle-test arm gentle"
    events = [event async for event in handle.fetch_history_events()]
    upserted = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        for e in events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    assert any("ExperimentArm" in fields for fields in upserted)
    database.dispose()


def test_policy_overlay_fields_are_all_known_policy_fields() -> None:
    known = set(ContactPolicy.model_fields)
    for name in PolicyOverlay.model_fields:
        assert name in known or name == "window_offset_minutes", name


# --- the CLI and the API -------------------------------------------------------------------------


async def test_the_cli_starts_reports_and_stops_an_experiment(
    env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    good = tmp_path / "gentle.yaml"
    good.write_text(yaml.safe_dump(definition(segments=["plain"])), encoding="utf-8")
    started = await kindly(env, settings, "experiment", "start", str(good))
    assert started.exit_code == 0, started.output
    assert "experiment gentle-test: running; segments plain" in started.output
    assert "follow_up_interval_days=5" in started.output and "challenger" in started.output

    taken = await kindly(env, settings, "experiment", "start", str(good))
    assert taken.exit_code == 3 and "name: an experiment 'gentle-test' exists already" in taken.output

    bad = tmp_path / "early.json"
    early = {
        "name": "early",
        "segments": ["own_words"],
        "champion": "c",
        "arms": [
            {"name": "c", "weight": 1},
            {"name": "early", "weight": 1, "overlay": {"window_offset_minutes": -120}},
        ],
    }
    bad.write_text(json.dumps(early), encoding="utf-8")
    refused = await kindly(env, settings, "experiment", "start", str(bad))
    assert refused.exit_code == 2 and "arms.1.overlay: in segment 'own_words'" in refused.output, (
        refused.output
    )

    shown = await kindly(env, settings, "experiment", "status", "gentle-test", "--json")
    assert shown.exit_code == 0 and json.loads(shown.output)["arms"][1]["accounts"] == 0
    stopped = await kindly(env, settings, "experiment", "stop", "gentle-test", "--reason", "enough")
    assert stopped.exit_code == 0 and "stopped, stopped: enough" in stopped.output
    listed = await kindly(env, settings, "experiment", "list")
    assert "gentle-test" in listed.output and "stopped" in listed.output
    missing = await kindly(env, settings, "experiment", "status", "nope")
    assert missing.exit_code == 1 and "no experiment 'nope'" in missing.output


async def test_the_api_starts_reads_and_stops_an_experiment(api: Api) -> None:  # noqa: F811
    started = await api.http.post("/experiments", json=definition(segments=["plain"]), headers=AUTH)
    assert started.status_code == 201, started.text
    assert [arm["name"] for arm in started.json()["arms"]] == ["champion", "gentle"]
    again = await api.http.post("/experiments", json=definition(segments=["plain"]), headers=AUTH)
    assert again.status_code == 409 and "exists already" in again.json()["detail"]
    bad = await api.http.post("/experiments", json=definition(name="x", champion="nobody"), headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "champion"], bad.text
    read = await api.http.get("/experiments/gentle-test", headers=AUTH)
    assert read.status_code == 200 and read.json()["status"] == "running"
    stopped = await api.http.post("/experiments/gentle-test/stop", json={"reason": "done"}, headers=AUTH)
    assert stopped.status_code == 200 and stopped.json()["stop_reason"] == "done"
    assert (await api.http.get("/experiments/nope", headers=AUTH)).status_code == 404
    assert (await api.http.get("/experiments", headers={})).status_code == 401


async def test_a_shadow_arm_records_what_it_would_do_and_sends_as_the_champion(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    raw = definition(
        name="later-pre-due",
        segments=["plain"],
        arms=[
            {"name": "champion", "weight": 1},
            {"name": "later", "weight": 1, "shadow": True, "overlay": {"pre_due_days": [3, 0]}},
        ],
    )
    checked = checked_definition(raw, load_policies(settings.policy_file))
    database = make_engine(settings.database_url)
    ExperimentStore(database).start(checked, at=datetime.now(UTC) - timedelta(days=1))
    today = await local_today(env)
    due = today + timedelta(days=20)
    account = next(
        a
        for a in (make_account(due, segment="plain") for _ in range(50))
        if (arm := assign(checked, a.account_id)) is not None and arm.shadow
    )
    handle = await start(client, settings.task_queue, account)
    timeline = await eventually(
        lambda: account_timeline(client, account.account_id),
        lambda entries: any(entry.kind == "shadow_plan" for entry in entries),
    )
    [assigned] = [e.detail for e in timeline if e.kind == "experiment_assigned"]
    assert assigned == "experiment later-pre-due arm later (shadow: acts as the champion)"
    [shadow] = [e.detail for e in timeline if e.kind == "shadow_plan"]
    assert shadow.startswith(f"arm later would send pre_due at {due - timedelta(days=3)}T"), shadow
    status = await account_status(client, account.account_id)
    assert status.next_touchpoint_at is not None
    assert status.next_touchpoint_at.date() == due - timedelta(days=7), "it acts as the champion"

    # Its life goes on as the champion's: the D-7 reminder goes, then a payment in full ends it.
    await env.sleep(status.next_touchpoint_at - await env.get_current_time() + timedelta(hours=1))
    sent = await eventually(
        lambda: account_timeline(client, account.account_id),
        lambda entries: any(entry.kind == "sms_sent" for entry in entries),
    )
    assert [e.detail.split(" ")[0] for e in sent if e.kind == "sms_sent"] == ["pre_due"]
    await handle.signal("repayment", {"amount": str(account.amount_due), "reference": "SHADOW-PAID"})
    assert (await handle.result()).outcome == "repaid"
    plans = [e.detail for e in await account_timeline(client, account.account_id) if e.kind == "shadow_plan"]
    assert plans == [shadow], "the arm's plan (D-3) did not change when the account planned again: once"
    database.dispose()


# --- results and guardrails ----------------------------------------------------------------------


def _account(arm: str, number: int, *, cured: bool, sms: int, opted_out: bool) -> list[AuditEntry]:
    """An account of the ``gentle-test`` experiment, due 2026-10-01, its story told by audit rows."""
    account = f"R-{arm}-{number}"
    rows = [
        story.started(account, "2026-09-24T01:00:00", "standard", "1200.00", "CNY", "2026-10-01"),
        story.entry(
            account, "2026-09-24T01:00:00", "experiment_assigned", f"experiment gentle-test arm {arm}"
        ),
    ]
    rows += [
        story.sms(account, f"2026-10-{day + 1:02d}T02:00:00", "follow_up", day + 1) for day in range(sms)
    ]
    if opted_out:
        rows.append(story.entry(account, "2026-10-20T02:00:00", "opted_out"))
    if cured:
        rows.append(story.entry(account, "2026-10-15T02:00:00", "repaid", "paid in full"))
    return rows


def test_the_status_shows_each_arms_cure_rate_and_a_guardrail_closes_an_arm(engine: Engine) -> None:  # noqa: F811
    store = ExperimentStore(engine)
    store.start(ExperimentDefinition.model_validate(definition()))
    rows: list[AuditEntry] = []
    for number in range(100):  # champion: 30 of 100 cured, no opt-out
        rows += _account("champion", number, cured=number < 30, sms=2, opted_out=False)
    for number in range(100):  # gentle: 45 of 100 cured, but 8 opt-outs in 300 SMS (26.7 per 1,000)
        rows += _account("gentle", number, cured=number < 45, sms=3, opted_out=number < 8)
    AuditStore(engine).append(rows)

    found = experiment_report(engine, "gentle-test")
    assert found is not None
    champion, gentle = found.arms
    assert (champion.accounts, champion.matured, champion.cured, champion.cure_rate) == (100, 100, 30, 0.3)
    assert (gentle.cured, gentle.sms, gentle.opt_outs_per_1000_sms) == (45, 300, 26.67)
    assert gentle.versus_champion is not None and gentle.versus_champion.difference == 0.15
    low, high = gentle.versus_champion.interval
    assert 0 < low < 0.15 < high
    assert gentle.breaches == ["opt-outs 26.67 per 1,000 SMS above 20"] and champion.breaches == []

    assert enforce_guardrails(engine) == [("gentle-test", "gentle", "opt-outs 26.67 per 1,000 SMS above 20")]
    assert enforce_guardrails(engine) == [], "closed once"
    closed = store.get("gentle-test")
    assert closed is not None and set(closed.closed_arms) == {"gentle"}
    arms = [assign(closed.definition, f"N-{i}", closed_arms=closed.closed_arms) for i in range(50)]
    assert {a.arm for a in arms if a is not None} == {"champion"}


def test_complaints_per_1000_sms_are_shown_per_arm_and_their_guardrail_closes_an_arm(engine: Engine) -> None:  # noqa: F811
    rails = {"complaint_per_1000_sms": 5}
    ExperimentStore(engine).start(ExperimentDefinition.model_validate(definition(guardrails=rails)))
    rows: list[AuditEntry] = []
    for number in range(100):  # each arm: 300 SMS; champion 1 complaint (3.33), gentle 3 (10 per 1,000)
        for arm, complaints in (("champion", 1), ("gentle", 3)):
            rows += _account(arm, number, cured=False, sms=3, opted_out=False)
            if number < complaints:
                rows.append(story.complaint(f"R-{arm}-{number}", "2026-10-05T02:00:00", "complaint_opened"))
                rows.append(
                    story.complaint(
                        f"R-{arm}-{number}", "2026-10-07T02:00:00", "complaint_acknowledgement_overdue"
                    )
                )
    AuditStore(engine).append(rows)

    found = experiment_report(engine, "gentle-test")
    assert found is not None
    champion, gentle = found.arms
    assert (champion.complaints_per_1000_sms, gentle.complaints_per_1000_sms) == (3.33, 10.0)
    assert champion.breaches == [] and gentle.breaches == ["complaints 10.0 per 1,000 SMS above 5"]
    assert enforce_guardrails(engine) == [("gentle-test", "gentle", "complaints 10.0 per 1,000 SMS above 5")]
    refused = definition(guardrails={"complaint_per_1000_sms": 0})
    with pytest.raises(ValidationError, match="complaint_per_1000_sms"):
        ExperimentDefinition.model_validate(refused)


def test_young_accounts_do_not_count_for_the_cure_rate_until_their_window_ends(engine: Engine) -> None:  # noqa: F811
    ExperimentStore(engine).start(ExperimentDefinition.model_validate(definition()))
    AuditStore(engine).append(_account("champion", 1, cured=False, sms=1, opted_out=False))
    young = experiment_report(engine, "gentle-test", today=date(2026, 10, 20))
    old = experiment_report(engine, "gentle-test", today=date(2026, 11, 1))
    assert young is not None and old is not None
    assert (young.arms[0].accounts, young.arms[0].matured, young.arms[0].cure_rate) == (1, 0, None)
    assert (old.arms[0].matured, old.arms[0].cure_rate) == (1, 0.0)


def test_a_shadow_arms_planned_sends_are_compared_with_what_its_accounts_got(engine: Engine) -> None:  # noqa: F811
    account = "S-1"
    rows = [
        story.entry(
            account,
            "2026-10-01T01:00:00",
            "experiment_assigned",
            "experiment e arm later (shadow: acts as the champion)",
        ),
        # Replaced (day 2) before its moment (day 3): never due.
        story.entry(
            account,
            "2026-10-01T01:00:00",
            "shadow_plan",
            "arm later would send pre_due at 2026-10-03T10:00:00+08:00",
        ),
        # Due on day 4, before the next plan (day 5): a send the arm would have made.
        story.entry(
            account,
            "2026-10-02T01:00:00",
            "shadow_plan",
            "arm later would send due_today at 2026-10-04T10:00:00+08:00",
        ),
        story.entry(
            account,
            "2026-10-05T01:00:00",
            "shadow_plan",
            "arm later would create a call task at 2026-10-06T10:00:00+08:00",
        ),
        # Still ahead of now (day 10).
        story.entry(
            account,
            "2026-10-06T01:00:00",
            "shadow_plan",
            "arm later would send follow_up at 2026-10-20T10:00:00+08:00",
        ),
        story.sms(account, "2026-10-03T02:00:00", "pre_due"),
        story.sms(account, "2026-10-07T02:00:00", "due_today", 2),
        story.sms("OTHER", "2026-10-07T02:00:00", "due_today"),
    ]
    AuditStore(engine).append(rows)
    volumes = shadow_volumes(engine, "e", "later", now=datetime(2026, 10, 10, tzinfo=UTC))
    assert (volumes.accounts, volumes.planned_sends, volumes.actual_sends) == (1, 1, 2)
    assert [(v.day.isoformat(), v.planned_sends, v.actual_sends) for v in volumes.by_day] == [
        ("2026-10-03", 0, 1),
        ("2026-10-04", 1, 0),
        ("2026-10-07", 0, 1),
    ]
