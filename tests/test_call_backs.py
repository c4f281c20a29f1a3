"""Call-backs and the specialists' hand-back, as the pure effects and the planner see them (the 1.2
rules): a customer's own time for the next call, and an account returned to the automated cadence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kindly.domain.actions import call_reason, pause_ended
from kindly.domain.cases import CaseKind, case_kind
from kindly.domain.completions import call_task_created
from kindly.domain.contract import CallOutcome, CallOutcomeKind, Resume, SignalName, Stage, TimelineKind
from kindly.domain.effects import apply_signal
from kindly.domain.policy.model import ContactPolicy
from kindly.domain.policy.schedule import StepKind, plan_next
from kindly.domain.refusals import RefusalKind, refusal
from kindly.domain.state import AccountState
from tests.test_call_limits import TODAY, US, days, phone_state
from tests.test_schedule import NEW_YORK, OVERDUE_DONE, local, make_state

NOW = local(TODAY, 10)


def specialist_state(**fields: Any) -> AccountState:
    return make_state(done_touches=OVERDUE_DONE, escalation=Stage.SPECIALIST, **fields)


def call_back(at: datetime) -> dict[str, str]:
    return {"outcome": "call_back", "call_back_at": at.isoformat()}


def test_a_call_back_plans_the_next_call_at_the_customers_time() -> None:
    state = phone_state(phone_attempt=1, phone_requested_at=NOW - timedelta(hours=1))
    at = local(TODAY, 15)
    effect = apply_signal(state, SignalName.CALL_OUTCOME, call_back(at), NOW)
    assert effect.state.call_back_at == at
    assert effect.state.conversation_days == [TODAY], "the customer was reached"
    assert any("called back at 2026-11-30T15:00:00+08:00" in entry.detail for entry in effect.entries)
    step = plan_next(effect.state, NOW)
    assert (step.kind, step.at, step.attempt) == (StepKind.CALL, at, 2)
    assert call_reason(effect.state).startswith("customer asked to be called back at")


def test_a_call_back_goes_beyond_the_policys_attempts() -> None:
    """Two attempts are the policy's default: a third call the customer asked for is still made."""
    state = phone_state(phone_attempt=2, phone_requested_at=NOW - timedelta(hours=1))
    effect = apply_signal(state, SignalName.CALL_OUTCOME, call_back(local(TODAY, 16)), NOW)
    assert plan_next(effect.state, NOW).kind is StepKind.CALL


def test_the_call_backs_task_clears_it_and_the_next_no_answer_goes_on_as_before() -> None:
    state = phone_state(phone_attempt=2, call_back_at=local(TODAY, 15))
    created = call_task_created(
        state, attempt=3, touchpoint=9, reason="call-back", status="accepted", detail="", now=local(TODAY, 15)
    ).state
    assert created.call_back_at is None
    missed = apply_signal(created, SignalName.CALL_OUTCOME, {"outcome": "no_answer"}, local(TODAY, 15, 5))
    assert plan_next(missed.state, local(TODAY, 15, 5)).kind is StepKind.SPECIALIST


def test_us_a_requested_call_back_is_not_held_by_the_week_after_a_conversation() -> None:
    state = phone_state(timezone=NEW_YORK, policy=US, phone_attempt=1)
    now = local(TODAY, 10, zone=NEW_YORK)
    at = local(TODAY + timedelta(days=1), 11, zone=NEW_YORK)
    effect = apply_signal(state, SignalName.CALL_OUTCOME, call_back(at), now)
    assert effect.state.conversation_days == days(0)
    step = plan_next(effect.state, now)
    assert (step.kind, step.at) == (StepKind.CALL, at)


def test_a_call_back_outside_the_window_waits_for_it() -> None:
    state = phone_state(phone_attempt=1)
    effect = apply_signal(state, SignalName.CALL_OUTCOME, call_back(local(TODAY, 23)), NOW)
    step = plan_next(effect.state, NOW)
    assert step.at == local(TODAY + timedelta(days=1), 9)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"outcome": "call_back"}, "call_back_at"),
        ({"outcome": "call_back", "call_back_at": "2026-11-30T09:00:00+08:00"}, "call_back_at"),
        ({"outcome": "call_back", "call_back_at": "2027-01-30T09:00:00+08:00"}, "call_back_at"),
    ],
    ids=["missing", "past", "too-far"],
)
def test_a_bad_call_back_is_refused_naming_the_field(payload: dict[str, str], field: str) -> None:
    why = refusal(phone_state(), CallOutcome.model_validate(payload), NOW)
    assert why is not None and (why.kind, why.field) == (RefusalKind.INVALID, field)


def test_a_call_back_without_an_offset_is_refused_by_the_contract() -> None:
    effect = apply_signal(
        phone_state(),
        SignalName.CALL_OUTCOME,
        {"outcome": "call_back", "call_back_at": "2026-11-30T15:00"},
        NOW,
    )
    assert [entry.kind for entry in effect.entries] == [TimelineKind.SIGNAL_REJECTED]
    assert "UTC offset" in effect.entries[0].detail


def test_runs_before_1_2_refuse_call_backs_and_hand_backs() -> None:
    message = CallOutcome(outcome=CallOutcomeKind.CALL_BACK, call_back_at=local(TODAY, 15))
    why = refusal(phone_state(), message, NOW, rules_1_2=False)
    assert why is not None and why.kind is RefusalKind.CONFLICT
    specialist = specialist_state()
    assert refusal(specialist, Resume(), NOW, rules_1_2=False) is not None
    assert refusal(specialist, message, NOW) is not None, "the specialists' account takes no call-back"


def test_a_resume_hands_a_specialists_account_back_to_the_cadence() -> None:
    state = specialist_state(
        unanswered_sms=4,
        phone_attempt=2,
        last_touch_date=TODAY - timedelta(days=9),
    )
    assert plan_next(state, NOW).kind is StepKind.IDLE
    assert refusal(state, Resume(), NOW) is None
    effect = apply_signal(state, SignalName.RESUME, {}, NOW)
    handed_back = effect.state
    assert (handed_back.escalation, handed_back.unanswered_sms, handed_back.phone_attempt) == (None, 0, 0)
    assert "handed back to automated contact" in effect.entries[0].detail
    step = plan_next(handed_back, NOW)
    assert step.kind is StepKind.SMS, "the overdue cadence goes on"


def test_a_resume_of_an_account_neither_paused_nor_with_specialists_is_still_a_conflict() -> None:
    why = refusal(phone_state(), Resume(), NOW)
    assert why is not None and why.message == "account is not paused"


@pytest.mark.parametrize(
    ("reason", "fields", "kind"),
    [
        ("customer reported hardship: needs a person", {}, CaseKind.HARDSHIP),
        ("customer reported dispute: needs a person", {}, CaseKind.DISPUTE),
        ("call outcome wrong_number", {}, CaseKind.WRONG_NUMBER),
        ("call outcome refused", {}, CaseKind.REFUSED),
        (None, {"sms_undeliverable": True}, CaseKind.UNDELIVERABLE),
        (None, {}, CaseKind.NO_CONTACT),
    ],
)
def test_the_kind_of_case_follows_why_the_account_was_handed_over(
    reason: str | None, fields: dict[str, bool], kind: CaseKind
) -> None:
    assert case_kind(phone_state(specialist_reason=reason, **fields)) is kind


def test_the_call_back_time_is_shown_in_the_customers_zone() -> None:
    state = phone_state(policy=ContactPolicy())
    at = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # 15:00 in Shanghai
    effect = apply_signal(state, SignalName.CALL_OUTCOME, call_back(at), NOW)
    assert any(entry.detail.endswith("2026-11-30T15:00:00+08:00") for entry in effect.entries)


def test_runs_before_1_2_only_unpause_a_paused_specialists_account() -> None:
    state = specialist_state(paused=True, pause_reason="review")
    old = apply_signal(state, SignalName.RESUME, {}, NOW, rules_1_2=False).state
    assert (old.paused, old.escalation) == (False, Stage.SPECIALIST)
    new = apply_signal(state, SignalName.RESUME, {}, NOW).state
    assert (new.paused, new.escalation) == (False, None)


def test_a_promise_then_a_resume_hands_the_account_back_with_the_promise_held() -> None:
    """The specialists' "promise" resolution: the promise (the account stays theirs, as any promise
    leaves it), then the hand-back; the cadence then waits for the promised date."""
    promised = TODAY + timedelta(days=5)
    promise = apply_signal(specialist_state(), SignalName.PROMISE_TO_PAY, {"date": promised.isoformat()}, NOW)
    assert promise.state.escalation == Stage.SPECIALIST
    handed_back = apply_signal(promise.state, SignalName.RESUME, {}, NOW).state
    assert (handed_back.escalation, handed_back.promise_date) == (None, promised)
    step = plan_next(handed_back, NOW)
    assert step.kind is StepKind.SMS and step.at is not None and step.at.date() > promised


def test_a_specialists_pause_until_a_date_hands_the_account_back_when_it_ends() -> None:
    state = specialist_state(paused=True, paused_until=NOW)
    assert pause_ended(state, hand_back_from_specialists=True).state.escalation is None
    assert pause_ended(state).state.escalation == Stage.SPECIALIST
