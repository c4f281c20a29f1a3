"""Complaints as the pure effects, refusals and planner see them: opened by a reply or an operator, told
apart from disputes, counted in business days, holding contact until an operator resumes it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from kindly.domain.complaint_effects import deadlines_passed
from kindly.domain.complaints import ComplaintChannel, ComplaintOutcome
from kindly.domain.contract import SignalName, Stage, TimelineKind
from kindly.domain.effect_types import CancelReason
from kindly.domain.effects import apply_signal
from kindly.domain.policy.business_days import business_deadline
from kindly.domain.policy.model import ContactPolicy
from kindly.domain.policy.replies import ReplyIntent, ReplyKeywords, classify_reply
from kindly.domain.policy.schedule import StepKind, plan_next
from kindly.domain.refusals import Refusal, RefusalKind, parsed, refusal
from kindly.domain.state import AccountState, current_stage
from kindly.domain.status import account_status
from tests.test_schedule import OVERDUE_DONE, local, make_state

# A Monday in the mainland calendar with no holiday near it.
MONDAY = date(2026, 11, 30)
NOW = local(MONDAY, 10)


def overdue_state(**fields: Any) -> AccountState:
    return make_state(done_touches=OVERDUE_DONE, **fields)


def opened(state: AccountState | None = None, at: datetime = NOW) -> AccountState:
    effect = apply_signal(state or overdue_state(), SignalName.CUSTOMER_REPLY, {"text": "我要投诉你们"}, at)
    assert effect.state.complaints, effect.entries
    return effect.state


# --- telling complaints from disputes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("我要投诉你们", ReplyIntent.COMPLAINT),
        ("再发短信我就打12378", ReplyIntent.COMPLAINT),
        ("I will complain to the regulator", ReplyIntent.COMPLAINT),
        ("this is harassment", ReplyIntent.COMPLAINT),
        ("我要投诉，这不是我的贷款", ReplyIntent.COMPLAINT),
        ("不是我的", ReplyIntent.DISPUTE),
        ("this is not my loan", ReplyIntent.DISPUTE),
        ("wrong amount", ReplyIntent.DISPUTE),
        ("my card ends 1237845", ReplyIntent.OTHER),
        ("失业了 还不起", ReplyIntent.HARDSHIP),
        ("STOP", ReplyIntent.OPT_OUT),
    ],
)
def test_complaint_keywords_are_told_apart_from_disputes(text: str, intent: ReplyIntent) -> None:
    assert classify_reply(text) is intent


def test_runs_before_1_3_hear_the_old_dispute_list() -> None:
    """A policy recorded before 1.3 lists 投诉 among disputes; without the 1.3 rules it stays a dispute."""
    recorded = ReplyKeywords(dispute=[*ReplyKeywords().dispute, "投诉"])
    assert classify_reply("我要投诉", recorded, complaints=False) is ReplyIntent.DISPUTE
    assert classify_reply("我要投诉", recorded) is ReplyIntent.COMPLAINT


def test_complaint_keywords_are_configurable_per_segment() -> None:
    policy = ContactPolicy(reply_keywords=ReplyKeywords(complaint=["态度恶劣"]))
    state = overdue_state(policy=policy)
    effect = apply_signal(state, SignalName.CUSTOMER_REPLY, {"text": "你们态度恶劣"}, NOW)
    assert [c.channel for c in effect.state.complaints] == [ComplaintChannel.SMS_REPLY]
    plain = apply_signal(state, SignalName.CUSTOMER_REPLY, {"text": "我要投诉"}, NOW)
    assert not plain.state.complaints, "this segment's list replaces the default one"


def test_a_reply_in_a_run_before_1_3_is_a_dispute_not_a_complaint() -> None:
    state = overdue_state(policy=ContactPolicy(reply_keywords=ReplyKeywords(dispute=["投诉"])))
    effect = apply_signal(state, SignalName.CUSTOMER_REPLY, {"text": "我要投诉"}, NOW, rules_1_3=False)
    assert not effect.state.complaints
    assert effect.stale is CancelReason.DISPUTE


# --- deadlines in business days ---------------------------------------------------------------------


def test_deadlines_count_business_days_in_the_customers_zone() -> None:
    policy = ContactPolicy()
    friday_evening = local(date(2026, 12, 4), 21)
    acknowledge = business_deadline(policy, "Asia/Shanghai", friday_evening, 1)
    assert acknowledge == local(date(2026, 12, 8), 0), "Monday is the first business day: its end"
    resolve = business_deadline(policy, "Asia/Shanghai", friday_evening, 15)
    assert resolve == local(date(2026, 12, 26), 0), "three weeks of weekdays, ending Friday the 25th"


def test_public_holidays_are_not_business_days_and_make_up_days_are() -> None:
    """National Day 2026 (1-7 October) pushes a deadline past the week; Saturday 10 October is a make-up
    working day (调休), so it counts."""
    policy = ContactPolicy()
    before_the_holiday = local(date(2026, 9, 30), 12)
    assert business_deadline(policy, "Asia/Shanghai", before_the_holiday, 1) == local(date(2026, 10, 9), 0)
    friday = local(date(2026, 10, 9), 12)
    assert business_deadline(policy, "Asia/Shanghai", friday, 1) == local(date(2026, 10, 11), 0)


def test_a_policy_without_a_calendar_counts_weekdays() -> None:
    policy = ContactPolicy(holiday_calendar=None)
    received = local(date(2026, 9, 30), 12)
    assert business_deadline(policy, "Asia/Shanghai", received, 1) == local(date(2026, 10, 2), 0)


# --- a complaint's life -------------------------------------------------------------------------------


def test_a_reply_opens_a_complaint_and_holds_contact() -> None:
    effect = apply_signal(overdue_state(), SignalName.CUSTOMER_REPLY, {"text": "我要投诉你们"}, NOW)
    state = effect.state
    (complaint,) = state.complaints
    assert complaint.channel is ComplaintChannel.SMS_REPLY and complaint.received_at == NOW
    assert complaint.acknowledge_by == local(date(2026, 12, 2), 0)
    assert complaint.resolve_by == local(date(2026, 12, 22), 0)
    assert [e.kind for e in effect.entries] == [TimelineKind.REPLY_RECEIVED, TimelineKind.COMPLAINT_OPENED]
    assert "我要投诉" not in " ".join(e.detail for e in effect.entries), "the customer's words stay out"
    assert effect.stale is CancelReason.COMPLAINT and effect.complaint_changed
    assert state.complaint_hold and current_stage(state, MONDAY) is Stage.PAUSED
    step = plan_next(state, NOW)
    assert (step.kind, step.at) == (StepKind.COMPLAINT_DEADLINE, complaint.acknowledge_by)
    assert account_status(state, NOW).contact_held_for_complaint


def test_a_second_complaint_reply_while_one_is_open_opens_nothing_new() -> None:
    state = opened()
    again = apply_signal(state, SignalName.CUSTOMER_REPLY, {"text": "投诉!!"}, NOW + timedelta(hours=1))
    assert len(again.state.complaints) == 1
    assert [e.kind for e in again.entries] == [TimelineKind.REPLY_RECEIVED]


def test_a_missed_acknowledgement_is_escalated_once() -> None:
    state = opened()
    deadline = state.complaints[0].acknowledge_by
    effect = deadlines_passed(state, deadline)
    assert [e.kind for e in effect.entries] == [TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE]
    assert "not acknowledged by its deadline 2026-12-02T00:00:00+08:00: escalated" in effect.entries[0].detail
    escalated = effect.state
    assert escalated.complaints[0].acknowledgement_overdue_at == deadline
    assert deadlines_passed(escalated, deadline).entries == (), "recorded once"
    step = plan_next(escalated, deadline)
    assert (step.kind, step.at) == (StepKind.COMPLAINT_DEADLINE, escalated.complaints[0].resolve_by)


def test_a_complaint_received_long_ago_is_late_on_both_counts_at_once() -> None:
    received = NOW - timedelta(days=40)
    effect = apply_signal(
        overdue_state(),
        SignalName.OPEN_COMPLAINT,
        {"channel": "console", "received_at": received.isoformat()},
        NOW,
    )
    step = plan_next(effect.state, NOW)
    assert (step.kind, step.at) == (StepKind.COMPLAINT_DEADLINE, NOW)
    passed = deadlines_passed(effect.state, NOW)
    assert [e.kind for e in passed.entries] == [
        TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE,
        TimelineKind.COMPLAINT_RESOLUTION_OVERDUE,
    ]


def test_acknowledge_then_resolve_keeps_contact_held_until_resumed() -> None:
    state = opened()
    later = NOW + timedelta(hours=3)
    acknowledged = apply_signal(
        state,
        SignalName.ACKNOWLEDGE_COMPLAINT,
        {"complaint": 1, "note": "called back, explained the SMS"},
        later,
    )
    assert acknowledged.state.complaints[0].acknowledged_at == later
    assert acknowledged.entries[0].detail == "complaint 1 acknowledged; note: called back, explained the SMS"
    step = plan_next(acknowledged.state, later)
    assert (step.kind, step.at) == (StepKind.COMPLAINT_DEADLINE, state.complaints[0].resolve_by)

    resolved = apply_signal(
        acknowledged.state,
        SignalName.RESOLVE_COMPLAINT,
        {"complaint": 1, "outcome": "upheld", "note": "frequency lowered; apologised"},
        later + timedelta(days=2),
    )
    complaint = resolved.state.complaints[0]
    assert complaint.outcome is ComplaintOutcome.UPHELD and not complaint.is_open
    assert resolved.state.complaint_hold, "a person decides when contact resumes"
    assert plan_next(resolved.state, later + timedelta(days=2)).kind is StepKind.IDLE

    resumed = apply_signal(resolved.state, SignalName.RESUME, {}, later + timedelta(days=3))
    assert not resumed.state.complaint_hold
    assert plan_next(resumed.state, later + timedelta(days=3)).kind is StepKind.SMS


def test_a_late_acknowledgement_says_so() -> None:
    state = opened()
    late = state.complaints[0].acknowledge_by + timedelta(hours=5)
    effect = apply_signal(
        state, SignalName.ACKNOWLEDGE_COMPLAINT, {"complaint": 1, "note": "letter sent"}, late
    )
    assert ", after its deadline 2026-12-02T00:00:00+08:00" in effect.entries[0].detail


def test_a_pause_that_ends_during_a_complaint_does_not_resume_contact() -> None:
    state = opened()
    until = NOW + timedelta(days=2)
    paused = apply_signal(state, SignalName.PAUSE, {"reason": "hospital", "until": until.isoformat()}, NOW)
    ended = paused.state.model_copy(update={"paused": False, "paused_until": None})
    assert plan_next(ended, until).kind in (StepKind.IDLE, StepKind.COMPLAINT_DEADLINE)


def test_the_opt_out_confirmation_still_goes_during_a_complaint() -> None:
    state = opened()
    stopped = apply_signal(state, SignalName.CUSTOMER_REPLY, {"text": "STOP"}, NOW + timedelta(minutes=5))
    step = plan_next(stopped.state, NOW + timedelta(minutes=5))
    assert step.kind is StepKind.SERVICE_SMS


# --- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        (SignalName.OPEN_COMPLAINT, {"channel": "sms_reply"}, "channel"),
        (SignalName.OPEN_COMPLAINT, {"channel": "letter"}, "channel"),
        (SignalName.OPEN_COMPLAINT, {"received_at": "2026-11-30T09:00:00"}, "received_at"),
        (SignalName.OPEN_COMPLAINT, {"note": "call him on 138 0013 8000"}, "note"),
        (SignalName.OPEN_COMPLAINT, {"note": "wrote from li@example.com"}, "note"),
        (SignalName.OPEN_COMPLAINT, {"note": "x" * 501}, "note"),
        (SignalName.OPEN_COMPLAINT, {"bogus": 1}, "bogus"),
        (SignalName.ACKNOWLEDGE_COMPLAINT, {"note": "ok"}, "complaint"),
        (SignalName.ACKNOWLEDGE_COMPLAINT, {"complaint": 0, "note": "ok"}, "complaint"),
        (SignalName.ACKNOWLEDGE_COMPLAINT, {"complaint": 1}, "note"),
        (SignalName.ACKNOWLEDGE_COMPLAINT, {"complaint": 1, "note": "   "}, "note"),
        (SignalName.RESOLVE_COMPLAINT, {"complaint": 1, "note": "done"}, "outcome"),
        (SignalName.RESOLVE_COMPLAINT, {"complaint": 1, "outcome": "maybe", "note": "done"}, "outcome"),
        (
            SignalName.RESOLVE_COMPLAINT,
            {"complaint": "one", "outcome": "upheld", "note": "done"},
            "complaint",
        ),
    ],
)
def test_bad_complaint_payloads_are_refused_naming_the_field(
    name: SignalName, payload: dict[str, Any], field: str
) -> None:
    state = opened()
    effect = apply_signal(state, name, payload, NOW)
    assert effect.state == state
    (entry,) = effect.entries
    assert entry.kind is TimelineKind.SIGNAL_REJECTED and f"{name}: {field}" in entry.detail


@pytest.mark.parametrize(
    ("name", "payload", "kind", "field", "words"),
    [
        (SignalName.OPEN_COMPLAINT, {}, RefusalKind.CONFLICT, None, "complaint 1 is open"),
        (
            SignalName.ACKNOWLEDGE_COMPLAINT,
            {"complaint": 2, "note": "ok"},
            RefusalKind.INVALID,
            "complaint",
            "has 1",
        ),
        (
            SignalName.RESOLVE_COMPLAINT,
            {"complaint": 3, "outcome": "upheld", "note": "x"},
            RefusalKind.INVALID,
            "complaint",
            "no complaint 3",
        ),
        (SignalName.RESUME, {}, RefusalKind.CONFLICT, None, "resolve it before contact resumes"),
        (
            SignalName.ACKNOWLEDGE_COMPLAINT,
            {"complaint": 1, "note": "spoke to li lei"},
            RefusalKind.INVALID,
            "note",
            "the customer's name",
        ),
    ],
)
def test_what_an_open_complaint_refuses(
    name: SignalName, payload: dict[str, Any], kind: RefusalKind, field: str | None, words: str
) -> None:
    state = opened()
    message = parsed(name, payload)
    assert not isinstance(message, Refusal)
    why = refusal(state, message, NOW)
    assert why is not None and (why.kind, why.field) == (kind, field) and words in why.message


def test_resolved_and_acknowledged_complaints_refuse_the_same_action_again() -> None:
    state = opened()
    ack = {"complaint": 1, "note": "ok"}
    acknowledged = apply_signal(state, SignalName.ACKNOWLEDGE_COMPLAINT, ack, NOW).state
    again = apply_signal(acknowledged, SignalName.ACKNOWLEDGE_COMPLAINT, ack, NOW)
    assert "already acknowledged" in again.entries[0].detail
    resolve = {"complaint": 1, "outcome": "withdrawn", "note": "customer withdrew it"}
    resolved = apply_signal(acknowledged, SignalName.RESOLVE_COMPLAINT, resolve, NOW).state
    assert (
        "already resolved"
        in apply_signal(resolved, SignalName.RESOLVE_COMPLAINT, resolve, NOW).entries[0].detail
    )


def test_a_received_time_ahead_of_now_or_over_a_year_ago_is_refused() -> None:
    state = overdue_state()
    ahead = {"received_at": (NOW + timedelta(hours=1)).isoformat()}
    assert "received_at: " in apply_signal(state, SignalName.OPEN_COMPLAINT, ahead, NOW).entries[0].detail
    old = {"received_at": (NOW - timedelta(days=400)).astimezone(UTC).isoformat()}
    assert (
        "more than a year ago" in apply_signal(state, SignalName.OPEN_COMPLAINT, old, NOW).entries[0].detail
    )


def test_a_second_complaint_opens_after_the_first_is_resolved() -> None:
    state = opened()
    resolve = {"complaint": 1, "outcome": "not_upheld", "note": "calls were within the rules"}
    resolved = apply_signal(state, SignalName.RESOLVE_COMPLAINT, resolve, NOW).state
    second = apply_signal(resolved, SignalName.OPEN_COMPLAINT, {"channel": "api"}, NOW + timedelta(days=1))
    assert [c.number for c in second.state.complaints] == [1, 2]
    assert "complaint 2 opened (api)" in second.entries[0].detail
