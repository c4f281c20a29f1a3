"""The workflow's other decisions without Temporal: plans, the SMS it starts, hand-offs, its audit trail and
the search attributes it publishes (``kindly.domain.actions``, ``workflows.audit_trail``,
``kindly.domain.search_attributes``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from activities.inputs import RunIdentity
from kindly.domain.actions import (
    call_reason,
    handoff_started,
    message_context,
    new_account,
    pause_ended,
    plan_noted,
    policy_reloaded,
    sms_started,
    specialist_reason,
)
from kindly.domain.completions import handed_off
from kindly.domain.contract import AccountInput, RefreshPolicy, Stage, TemplateName, TimelineKind
from kindly.domain.effects import ActionKind
from kindly.domain.policy.model import BUILT_IN_POLICIES
from kindly.domain.policy.schedule import Deferral, Step, StepKind
from kindly.domain.search_attributes import (
    DUE_DATE,
    as_start_attributes,
    changed,
    due_date_start,
    published_by_start,
    start_values,
)
from kindly.domain.state import AccountState, published_values
from kindly.domain.status import account_status
from tests.test_effects import DUE, NOW, TODAY, make_state
from workflows.audit_trail import PIGGYBACK_WINDOW, AuditTrail

RUN = RunIdentity(workflow_id="collections-ACC-1", first_run_id="run-1")


def sms_step(**fields: object) -> Step:
    defaults: dict[str, object] = {
        "kind": StepKind.SMS,
        "at": NOW,
        "template": TemplateName.FOLLOW_UP,
        "touch_key": "follow_up",
        "counts_for_escalation": True,
    }
    return Step(**{**defaults, **fields})  # type: ignore[arg-type]


# --- plans ---------------------------------------------------------------------------------------


def test_a_new_plan_records_its_skips_and_deferrals_once() -> None:
    step = sms_step(
        at=NOW + timedelta(days=1),
        deferrals=(Deferral(day=TODAY, reason="holiday"),),
        superseded=(("D-1", "the account was paused that day"),),
    )
    first = plan_noted(make_state(), step, NOW)
    kinds = [entry.kind for entry in first.entries]
    assert kinds == [TimelineKind.SKIPPED, TimelineKind.DEFERRED]
    assert "2026-11-25 holiday" in first.entries[1].detail
    assert first.state.done_touches == ["D-1"] and first.state.next_touchpoint_at == step.at
    again = plan_noted(first.state, step, NOW)
    assert again.entries == () and again.state.done_touches == ["D-1"]


def test_a_plan_that_waits_for_a_signal_has_no_next_touchpoint() -> None:
    effect = plan_noted(make_state(next_touchpoint_at=NOW), Step(kind=StepKind.IDLE), NOW)
    assert effect.state.next_touchpoint_at is None


# --- SMS -----------------------------------------------------------------------------------------


def test_a_reminder_after_a_missed_promise_records_the_broken_promise() -> None:
    state = make_state(promise_date=TODAY - timedelta(days=1), touchpoints=4)
    effect, action = sms_started(state, sms_step(template=TemplateName.BROKEN_PROMISE), NOW)
    assert [entry.kind for entry in effect.entries] == [TimelineKind.PROMISE_BROKEN]
    assert effect.state.promise_date is None and effect.state.promise_broken
    assert action.kind is ActionKind.REMINDER and action.touchpoint == 5 and action.counts_for_escalation
    assert state.promise_date is not None  # the state it was given is left as it was


def test_a_service_reply_keeps_its_template_and_breaks_no_promise() -> None:
    state = make_state(promise_date=TODAY + timedelta(days=3))
    step = Step(kind=StepKind.SERVICE_SMS, at=NOW, template=TemplateName.HELP)
    effect, action = sms_started(state, step, NOW)
    assert effect.entries == () and effect.state.promise_date == state.promise_date
    assert action.kind is ActionKind.SERVICE_SMS and action.template is TemplateName.HELP


def test_a_gentle_segment_gets_gentle_wording() -> None:
    state = make_state(policy=BUILT_IN_POLICIES["gentle"])
    _, action = sms_started(state, sms_step(template=TemplateName.FOLLOW_UP), NOW)
    assert action.template is TemplateName.GENTLE_REMINDER


def test_messages_show_no_personal_data_and_an_ended_account_owes_nothing() -> None:
    context = message_context(make_state(), NOW)
    shown = context.model_dump_json()
    assert "Li Lei" not in shown and "13800138000" not in shown and "ACC-1" not in shown
    assert context.amount_due == Decimal("1200.00") and context.days_past_due == (TODAY - DUE).days
    ended = message_context(make_state(outcome="repaid"), NOW)
    assert ended.amount_due == 0


def test_a_new_account_starts_on_the_customers_local_date() -> None:
    account = make_state().account
    late_evening_utc = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 02:00 on the 25th in Shanghai
    state = new_account(account, BUILT_IN_POLICIES["standard"], late_evening_utc, opted_out=True)
    assert state.started_on == date(2026, 11, 25) and state.opted_out


# --- pauses, policies, hand-offs -----------------------------------------------------------------


def test_a_pause_that_runs_out_restarts_the_cadence() -> None:
    effect = pause_ended(make_state(paused=True, paused_until=NOW))
    assert not effect.state.paused and effect.state.paused_until is None
    assert effect.entries[0].kind is TimelineKind.RESUMED


def test_a_reloaded_policy_names_what_changed() -> None:
    state = make_state()
    slower = state.policy.model_copy(
        update={"follow_up_interval_days": state.policy.follow_up_interval_days + 2}
    )
    effect = policy_reloaded(state, slower, RefreshPolicy(reason="new rules"))
    assert effect.state.policy == slower
    assert effect.entries[0].detail == "segment standard policy reloaded (new rules): follow_up_interval_days"
    same = policy_reloaded(state, state.policy, RefreshPolicy())
    assert same.entries[0].detail.endswith("nothing changed")


def test_call_tasks_and_hand_offs_say_why() -> None:
    assert call_reason(make_state(unanswered_sms=3)) == "3 unanswered SMS"
    assert call_reason(make_state(opted_out=True)) == "customer opted out of SMS"
    assert call_reason(make_state(sms_undeliverable=True)) == "number cannot receive SMS"
    assert call_reason(make_state(phone_attempt=2, opted_out=True)) == "attempt 2 got no outcome"
    assert specialist_reason(make_state(specialist_reason="call outcome refused")) == "call outcome refused"
    assert specialist_reason(make_state(phone_attempt=3)) == "3 call attempt(s) without result"


def test_a_hand_off_records_its_stage_and_touchpoint() -> None:
    state = make_state(touchpoints=6, unanswered_sms=3)
    call = handoff_started(state, Step(kind=StepKind.CALL, at=NOW, attempt=1))
    assert (call.kind, call.touchpoint, call.what) == (ActionKind.CALL_TASK, 7, "call task attempt 1")
    made = handed_off(state, call, "accepted", "", NOW)
    assert made.state.escalation is Stage.PHONE and made.state.touchpoints == 7
    specialist = handoff_started(made.state, Step(kind=StepKind.SPECIALIST, at=NOW))
    assert specialist.what == "specialist hand-off"
    done = handed_off(made.state, specialist, "logged", "", NOW)
    assert done.state.escalation is Stage.SPECIALIST and done.entries[0].audited


# --- the audit trail -----------------------------------------------------------------------------


def test_entries_wait_for_the_next_action_and_reach_the_audit_log_under_stable_keys() -> None:
    trail, state = AuditTrail(RUN), make_state()
    trail.record(state, TimelineKind.PAUSED, "paused (review)", NOW)
    trail.record(state, TimelineKind.RESUMED, "resumed", NOW)
    pending = trail.pending(state)
    assert [record.event_key for record in pending] == [
        "collections-ACC-1/run-1/ev-1",
        "collections-ACC-1/run-1/ev-2",
    ]
    assert pending[0].at.utcoffset() == timedelta(hours=8)  # the customer's zone, as the timeline shows
    assert AuditTrail.would_lag(state, NOW + PIGGYBACK_WINDOW + timedelta(seconds=1), NOW)
    assert not AuditTrail.would_lag(state, NOW + PIGGYBACK_WINDOW, NOW)
    assert AuditTrail.would_lag(state, None, NOW)
    AuditTrail.written(state, pending)
    assert trail.pending(state) == [] and not AuditTrail.would_lag(state, None, NOW)


def test_an_entry_its_activity_wrote_counts_as_written_only_after_every_earlier_one() -> None:
    trail, state = AuditTrail(RUN), make_state()
    trail.record(state, TimelineKind.SMS_SENT, "sent", NOW, audited=True)
    assert trail.pending(state) == []
    trail.record(state, TimelineKind.PAUSED, "paused", NOW)
    trail.record(state, TimelineKind.SMS_SENT, "sent again", NOW, audited=True)
    assert [record.event_key[-4:] for record in trail.pending(state)] == ["ev-2", "ev-3"]


def test_the_timeline_keeps_its_latest_entries_and_the_keys_keep_counting() -> None:
    trail, state = AuditTrail(RUN), make_state()
    for i in range(510):
        trail.record(state, TimelineKind.SIGNAL_REJECTED, f"bad {i}", NOW, audited=True)
    assert len(state.timeline) == 500 and state.events_recorded == 510
    trail.record(state, TimelineKind.PAUSED, "paused", NOW)
    assert trail.pending(state)[0].event_key.endswith("/ev-511")


# --- search attributes ---------------------------------------------------------------------------


def test_the_due_date_attribute_is_the_moment_the_due_date_began_in_the_customers_zone() -> None:
    account = make_state().account
    assert due_date_start(account) == datetime(2026, 11, 19, 16, 0, tzinfo=UTC)
    in_new_york = AccountInput.model_validate({**account.model_dump(), "timezone": "America/New_York"})
    assert due_date_start(in_new_york) == datetime(2026, 11, 20, 5, 0, tzinfo=UTC)


def test_a_start_gives_the_static_attributes_and_the_run_upserts_only_what_differs() -> None:
    state = make_state()
    given = start_values(state.account, "overdue")
    attributes = as_start_attributes(given)
    assert attributes.get(DUE_DATE) == due_date_start(state.account)
    published = published_by_start(attributes)
    assert published == given and "NextTouchpointAt" not in published
    assert given["Currency"] == state.account.currency and given["TimeZone"] == state.account.timezone
    wanted = published_values(state, TODAY, NOW + timedelta(days=2))
    assert "DueDate" not in wanted, "static: left to the start, never upserted"
    assert wanted["TimeZone"] == given["TimeZone"], (
        "kept true, so upserted only when a contact change moves it"
    )
    legacy = published_values(state, TODAY, NOW + timedelta(days=2), with_zone=False)
    assert not {"Currency", "TimeZone"} & set(legacy), "runs recorded before 1.1 never published them"
    updates = changed(published, wanted)
    assert [update.key.name for update in updates] == ["NextTouchpointAt"]
    assert changed({**published, **wanted}, wanted) == []
    paused = published_values(make_state(paused=True), TODAY, None)
    names = {update.key.name for update in changed({**published, **wanted}, paused)}
    assert names == {"CollectionStage", "NextTouchpointAt", "Paused"}
    moved = state.model_copy(update={"account": state.account.model_copy(update={"timezone": "Asia/Tokyo"})})
    names = {
        u.key.name
        for u in changed({**published, **wanted}, published_values(moved, TODAY, NOW + timedelta(days=2)))
    }
    assert names == {"TimeZone"}


def test_a_bare_start_without_attributes_gets_them_all_from_its_run() -> None:
    state = make_state()
    wanted = published_values(state, TODAY, NOW)
    assert {
        update.key.name for update in changed(published_by_start(as_start_attributes({})), wanted)
    } == set(wanted)


def test_published_values_follow_the_state() -> None:
    state: AccountState = make_state(amount_due=Decimal("800.00"), unanswered_sms=2, escalation=Stage.PHONE)
    values = published_values(state, TODAY, None)
    assert values["CollectionStage"] == "phone" and values["AmountDue"] == 800.0
    assert values["UnansweredSms"] == 2 and values["NextTouchpointAt"] is None
    ended = published_values(make_state(outcome="settled"), TODAY, None)
    assert ended["CollectionStage"] == "settled"


# --- the status ----------------------------------------------------------------------------------


def test_the_status_names_holds_escalation_and_the_next_step_at_the_customers_offset() -> None:
    state = make_state(
        opted_out=True,
        escalation=Stage.PHONE,
        promise_date=TODAY + timedelta(days=3),
        paused_until=datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
        amount_due=Decimal("1200"),
    )
    step = Step(kind=StepKind.CALL, at=datetime(2026, 11, 21, 1, 30, 15, 999, tzinfo=UTC), touch_key="call-1")
    status = account_status(plan_noted(state, step, NOW).state, NOW)
    assert status.opted_out and status.escalation is Stage.PHONE
    assert status.promise_date == TODAY + timedelta(days=3)
    assert status.paused_until is not None and status.paused_until.isoformat() == "2026-12-01T09:00:00+08:00"
    assert status.next_touchpoint_at is not None
    assert status.next_touchpoint_at.isoformat() == "2026-11-21T09:30:15+08:00"
    assert status.next_step is not None and (status.next_step.kind, status.next_step.template) == (
        "call",
        None,
    )
    shown = status.model_dump(mode="json")
    assert shown["amount_due"] == "1200.00" and shown["currency"] == "CNY"


def test_an_ended_account_has_no_next_touchpoint_and_an_idle_one_no_next_step() -> None:
    planned = plan_noted(make_state(), Step(kind=StepKind.SMS, at=NOW, template=TemplateName.DUE_TODAY), NOW)
    ended = planned.state.model_copy(update={"outcome": "closed"})
    status = account_status(ended, NOW)
    assert status.stage is Stage.CLOSED and status.next_touchpoint_at is None and status.next_step is None
    idle = account_status(plan_noted(make_state(paused=True), Step(kind=StepKind.IDLE), NOW).state, NOW)
    assert idle.next_touchpoint_at is None and idle.next_step is None and idle.paused
