"""``kindly.domain.effects`` without Temporal: what every signal and every finished action does to an account.

Each function is called on a plain ``AccountState``; every call also checks that the state it was
given is left as it was (the workflow keeps the old state until it takes the effect).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from kindly.domain.completions import (
    SMS_DAYS_KEPT,
    SmsAction,
    call_task_created,
    handoff_cancelled,
    sms_cancelled,
    sms_finished,
    sms_not_accepted,
    specialist_handed_off,
)
from kindly.domain.contract import (
    SIGNAL_MODELS,
    AccountInput,
    Outcome,
    RefreshPolicy,
    SignalName,
    Stage,
    TemplateName,
    TimelineKind,
)
from kindly.domain.effects import (
    ActionKind,
    CancelReason,
    Effect,
    apply_signal,
    cancels,
)
from kindly.domain.policy.model import BUILT_IN_POLICIES, CALL_HISTORY_KEPT
from kindly.domain.state import AccountState

DUE = date(2026, 11, 20)
TODAY = date(2026, 11, 25)  # in Shanghai
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
PHONE = "+8613800138000"
OTHER_PHONE = "+8613900139000"


def make_state(**fields: Any) -> AccountState:
    """A standard-segment account in Shanghai, 1200.00 due on ``DUE``, with ``fields`` set."""
    account = AccountInput(
        account_id="ACC-1",
        customer_name="Li Lei",
        phone=PHONE,
        timezone="Asia/Shanghai",
        locale="zh-CN",
        amount_due=Decimal("1200.00"),
        due_date=DUE,
    )
    state = AccountState.for_new_account(
        account, BUILT_IN_POLICIES["standard"], DUE - timedelta(days=10), opted_out=False
    )
    return state.model_copy(update=fields)


def busy_state(**fields: Any) -> AccountState:
    """A state with something in every list, to catch changes made in place."""
    defaults: dict[str, Any] = {
        "credited_references": ["R-0"],
        "amount_due": Decimal("1100.00"),
        "amount_collected": Decimal("100.00"),
        "done_touches": ["D-7", "D-0"],
        "sms_days": [DUE - timedelta(days=7), DUE],
        "sms_sent": 2,
        "unanswered_sms": 1,
        "touchpoints": 3,
        "pending_service": [TemplateName.HELP],
        "call_attempt_days": [TODAY - timedelta(days=3)],
        "conversation_days": [TODAY - timedelta(days=9)],
    }
    return make_state(**{**defaults, **fields})


def signal(state: AccountState, name: SignalName, payload: Any, now: datetime = NOW) -> Effect:
    """``apply_signal``, checking that it left ``state`` as it was."""
    before = state.model_dump()
    effect = apply_signal(state, name, payload, now)
    assert state.model_dump() == before, "the input state was changed in place"
    return effect


def unchanged(effect: Effect, state: AccountState) -> bool:
    return effect.state.model_dump() == state.model_dump()


def kinds(effect: Effect) -> list[TimelineKind]:
    return [entry.kind for entry in effect.entries]


def assert_rejected(effect: Effect, state: AccountState, detail: str) -> None:
    assert kinds(effect) == [TimelineKind.SIGNAL_REJECTED]
    assert effect.entries[0].detail == detail
    assert unchanged(effect, state)
    assert effect.stale is None and not effect.store_opt_out and not effect.phone_changed
    assert effect.refresh is None and not effect.escalated_to_person


# --- repayments ------------------------------------------------------------------------------------


def test_partial_repayment_lowers_the_amount_and_makes_messages_stale() -> None:
    state = make_state(unanswered_sms=2)
    effect = signal(state, SignalName.REPAYMENT, {"amount": "200.00", "reference": "R-1"})
    assert effect.state.amount_due == Decimal("1000.00")
    assert effect.state.amount_collected == Decimal("200.00")
    assert effect.state.credited_references == ["R-1"]
    assert effect.state.unanswered_sms == 0
    assert effect.state.outcome is None
    assert effect.stale is CancelReason.AMOUNT_CHANGED
    assert kinds(effect) == [TimelineKind.REPAYMENT_RECEIVED]
    assert effect.entries[0].detail == "200.00 received (R-1); 1000.00 left"


def test_full_repayment_ends_the_account_as_repaid() -> None:
    state = make_state()
    effect = signal(state, SignalName.REPAYMENT, {"amount": "1200.00", "reference": "R-1"})
    assert effect.state.outcome is Outcome.REPAID
    assert effect.state.amount_due == Decimal("0.00")
    assert effect.state.amount_collected == Decimal("1200.00")
    assert effect.stale is CancelReason.REPAID
    assert kinds(effect) == [TimelineKind.REPAYMENT_RECEIVED, TimelineKind.REPAID]
    assert effect.entries[1].detail == "paid in full"


def test_overpayment_leaves_nothing_due_and_counts_all_collected() -> None:
    effect = signal(make_state(), SignalName.REPAYMENT, {"amount": "1500.00", "reference": "R-1"})
    assert effect.state.outcome is Outcome.REPAID
    assert effect.state.amount_due == 0
    assert effect.state.amount_collected == Decimal("1500.00")
    assert effect.entries[0].detail == "1500.00 received (R-1); 0 left"


def test_a_reference_is_credited_once() -> None:
    first = signal(make_state(), SignalName.REPAYMENT, {"amount": "200.00", "reference": "R-1"}).state
    again = signal(first, SignalName.REPAYMENT, {"amount": "300.00", "reference": "R-1"})
    assert_rejected(again, first, "repayment: payment R-1 was already credited")
    assert again.state.amount_due == Decimal("1000.00")


# --- customer replies ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["STOP", " stop ", "退订", "TD", "unsubscribe"])
def test_stop_opts_out_and_owes_only_the_confirmation(text: str) -> None:
    state = make_state(pending_service=[TemplateName.HELP], unanswered_sms=2)
    effect = signal(state, SignalName.CUSTOMER_REPLY, {"text": text})
    assert effect.state.opted_out
    assert effect.state.pending_service == [TemplateName.OPT_OUT_CONFIRMATION]
    assert effect.state.unanswered_sms == 0
    assert effect.store_opt_out
    assert effect.stale is CancelReason.OPTED_OUT
    assert kinds(effect) == [TimelineKind.REPLY_RECEIVED, TimelineKind.OPTED_OUT]
    # The timeline keeps what the reply meant, never its text.
    assert effect.entries[0].detail == f"reply (opt_out, {len(text)} chars)"


def test_a_second_stop_changes_nothing_but_is_heard() -> None:
    opted = signal(make_state(), SignalName.CUSTOMER_REPLY, {"text": "STOP"}).state
    confirmed = opted.model_copy(update={"pending_service": []})  # the confirmation went out
    effect = signal(confirmed, SignalName.CUSTOMER_REPLY, {"text": "STOP"})
    assert unchanged(effect, confirmed)
    assert kinds(effect) == [TimelineKind.REPLY_RECEIVED]
    assert effect.stale is None and not effect.store_opt_out
    # While the confirmation is still owed, a second STOP neither drops nor doubles it.
    effect = signal(opted, SignalName.CUSTOMER_REPLY, {"text": "退订"})
    assert effect.state.pending_service == [TemplateName.OPT_OUT_CONFIRMATION]
    assert effect.stale is None and not effect.store_opt_out


@pytest.mark.parametrize("text", ["HELP", "help", "帮助"])
def test_help_is_owed_once(text: str) -> None:
    state = make_state()
    once = signal(state, SignalName.CUSTOMER_REPLY, {"text": text})
    assert once.state.pending_service == [TemplateName.HELP]
    assert kinds(once) == [TimelineKind.REPLY_RECEIVED]
    assert once.stale is None
    twice = signal(once.state, SignalName.CUSTOMER_REPLY, {"text": text})
    assert twice.state.pending_service == [TemplateName.HELP]


def test_help_after_opt_out_is_not_owed() -> None:
    opted = signal(make_state(), SignalName.CUSTOMER_REPLY, {"text": "STOP"}).state
    effect = signal(opted, SignalName.CUSTOMER_REPLY, {"text": "HELP"})
    assert effect.state.pending_service == [TemplateName.OPT_OUT_CONFIRMATION]
    done = opted.model_copy(update={"pending_service": []})
    assert signal(done, SignalName.CUSTOMER_REPLY, {"text": "HELP"}).state.pending_service == []


@pytest.mark.parametrize(
    ("text", "intent", "reason"),
    [
        ("I lost my job last month", "hardship", CancelReason.HARDSHIP),
        ("我失业了，还不起", "hardship", CancelReason.HARDSHIP),
        ("This is NOT MY LOAN", "dispute", CancelReason.DISPUTE),
        ("金额不对", "dispute", CancelReason.DISPUTE),
        ("STOP, this is a dispute", "dispute", CancelReason.DISPUTE),
    ],
)
def test_hardship_and_dispute_go_to_a_person(text: str, intent: str, reason: CancelReason) -> None:
    effect = signal(make_state(unanswered_sms=2), SignalName.CUSTOMER_REPLY, {"text": text})
    assert effect.state.specialist_reason == f"customer reported {intent}: needs a person"
    assert effect.stale is reason
    assert effect.escalated_to_person
    assert not effect.state.opted_out
    assert effect.state.unanswered_sms == 0
    assert kinds(effect) == [TimelineKind.REPLY_RECEIVED, TimelineKind.HANDED_TO_PERSON]
    assert text not in " ".join(entry.detail for entry in effect.entries)


def test_hardship_with_a_specialist_already_asks_for_no_second_hand_off() -> None:
    state = make_state(escalation=Stage.SPECIALIST)
    effect = signal(state, SignalName.CUSTOMER_REPLY, {"text": "hospital bills"})
    assert effect.state.specialist_reason is None
    assert effect.stale is CancelReason.HARDSHIP


@pytest.mark.parametrize("text", ["ok, thanks", "好的", ""])
def test_a_plain_reply_resets_the_unanswered_count_only(text: str) -> None:
    state = make_state(unanswered_sms=2)
    effect = signal(state, SignalName.CUSTOMER_REPLY, {"text": text})
    assert effect.state.model_dump() == state.model_copy(update={"unanswered_sms": 0}).model_dump()
    assert kinds(effect) == [TimelineKind.REPLY_RECEIVED]
    assert effect.stale is None


# --- pause, resume, settle, close ------------------------------------------------------------------


def test_pause_until_a_time() -> None:
    effect = signal(
        make_state(), SignalName.PAUSE, {"reason": "customer on holiday", "until": "2026-12-01T01:00:00Z"}
    )
    assert effect.state.paused
    assert effect.state.pause_reason == "customer on holiday"
    assert effect.state.paused_until == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert effect.stale is CancelReason.PAUSED
    assert kinds(effect) == [TimelineKind.PAUSED]
    assert effect.entries[0].detail == "customer on holiday until 2026-12-01T09:00:00+08:00"


def test_pause_without_end() -> None:
    effect = signal(make_state(), SignalName.PAUSE, {"reason": "complaint review"})
    assert effect.state.paused and effect.state.paused_until is None
    assert effect.entries[0].detail == "complaint review"
    assert effect.stale is CancelReason.PAUSED


def test_resume_ends_a_pause() -> None:
    paused = signal(make_state(), SignalName.PAUSE, {"reason": "x", "until": "2027-01-01T00:00:00Z"}).state
    effect = signal(paused, SignalName.RESUME, {})
    assert not effect.state.paused and effect.state.paused_until is None
    assert kinds(effect) == [TimelineKind.RESUMED]
    assert effect.stale is None
    assert signal(paused, SignalName.RESUME, None).state.paused is False


def test_resume_when_not_paused_is_rejected() -> None:
    state = make_state()
    assert_rejected(signal(state, SignalName.RESUME, {}), state, "resume: account is not paused")


def test_settle_ends_the_account_for_the_agreed_amount() -> None:
    state = make_state(amount_collected=Decimal("100.00"))
    effect = signal(state, SignalName.SETTLE, {"amount": "800.00", "reference": "S-1"})
    assert effect.state.outcome is Outcome.SETTLED
    assert effect.state.amount_collected == Decimal("900.00")
    assert effect.state.amount_due == Decimal("1200.00")
    assert effect.stale is CancelReason.SETTLED
    assert kinds(effect) == [TimelineKind.SETTLED]
    assert effect.entries[0].detail == "settled for 800.00 (S-1)"


def test_close_ends_the_account() -> None:
    effect = signal(make_state(), SignalName.CLOSE, {"reason": "written off"})
    assert effect.state.outcome is Outcome.CLOSED
    assert effect.stale is CancelReason.CLOSED
    assert kinds(effect) == [TimelineKind.CLOSED]
    assert effect.entries[0].detail == "written off"


# --- promises and calls ----------------------------------------------------------------------------


def test_promise_holds_contact_and_ends_the_phone_stage() -> None:
    state = make_state(
        escalation=Stage.PHONE, phone_attempt=1, phone_requested_at=NOW - timedelta(hours=3), unanswered_sms=3
    )
    effect = signal(state, SignalName.PROMISE_TO_PAY, {"date": "2026-12-01"})
    assert effect.state.promise_date == date(2026, 12, 1)
    assert effect.state.escalation is None
    assert effect.state.phone_attempt == 0 and effect.state.phone_requested_at is None
    assert effect.state.unanswered_sms == 0
    assert effect.stale is CancelReason.PROMISE_TO_PAY
    assert kinds(effect) == [TimelineKind.PROMISE]
    assert effect.entries[0].detail == "customer promised to pay by 2026-12-01; contact held"


def test_promise_keeps_the_specialist_stage() -> None:
    effect = signal(
        make_state(escalation=Stage.SPECIALIST), SignalName.PROMISE_TO_PAY, {"date": "2026-12-01"}
    )
    assert effect.state.escalation is Stage.SPECIALIST


def test_promise_for_the_customers_today_is_accepted_and_yesterday_is_not() -> None:
    late_evening_utc = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # already 25 Nov 01:00 in Shanghai
    state = make_state()
    accepted = signal(state, SignalName.PROMISE_TO_PAY, {"date": "2026-11-25"}, late_evening_utc)
    assert accepted.state.promise_date == TODAY
    refused = signal(state, SignalName.PROMISE_TO_PAY, {"date": "2026-11-24"}, late_evening_utc)
    assert_rejected(refused, state, "promise_to_pay: date: 2026-11-24 is in the past (today is 2026-11-25)")


def phone_stage(**fields: Any) -> AccountState:
    return make_state(
        escalation=Stage.PHONE,
        phone_attempt=1,
        phone_requested_at=NOW - timedelta(hours=5),
        unanswered_sms=3,
        **fields,
    )


def test_call_reached_ends_the_phone_stage() -> None:
    state = phone_stage()
    effect = signal(state, SignalName.CALL_OUTCOME, {"outcome": "reached"})
    assert effect.state.escalation is None
    assert effect.state.phone_attempt == 0 and effect.state.phone_requested_at is None
    assert effect.state.unanswered_sms == 0
    assert effect.state.last_touch_date == TODAY
    assert effect.state.conversation_days == [TODAY]
    assert effect.stale is CancelReason.REACHED
    assert kinds(effect) == [TimelineKind.CALL_OUTCOME]
    assert effect.entries[0].detail == "reached (attempt 1)"


def test_call_no_answer_waits_for_the_next_attempt() -> None:
    state = phone_stage()
    effect = signal(state, SignalName.CALL_OUTCOME, {"outcome": "no_answer"})
    assert effect.state.escalation is Stage.PHONE and effect.state.phone_attempt == 1
    assert effect.state.phone_requested_at is None
    assert effect.state.conversation_days == []
    assert effect.state.unanswered_sms == 3
    assert effect.stale is None
    assert effect.entries[0].detail == "no_answer (attempt 1)"


def test_call_promise_needs_a_date() -> None:
    state = phone_stage()
    effect = signal(state, SignalName.CALL_OUTCOME, {"outcome": "promise_to_pay"})
    assert_rejected(effect, state, "call_outcome: promise_date: required when outcome is promise_to_pay")


def test_call_promise_in_the_past_changes_nothing_not_even_the_conversations() -> None:
    state = phone_stage()
    effect = signal(
        state, SignalName.CALL_OUTCOME, {"outcome": "promise_to_pay", "promise_date": "2026-11-01"}
    )
    assert kinds(effect) == [TimelineKind.SIGNAL_REJECTED]
    assert unchanged(effect, state)


def test_call_promise_holds_contact() -> None:
    state = phone_stage()
    effect = signal(
        state, SignalName.CALL_OUTCOME, {"outcome": "promise_to_pay", "promise_date": "2026-12-02"}
    )
    assert effect.state.promise_date == date(2026, 12, 2)
    assert effect.state.escalation is None and effect.state.phone_attempt == 0
    assert effect.state.conversation_days == [TODAY]
    assert effect.stale is CancelReason.PROMISE_TO_PAY
    assert kinds(effect) == [TimelineKind.CALL_OUTCOME, TimelineKind.PROMISE]
    assert effect.entries[1].detail == "on the phone, customer promised to pay by 2026-12-02; contact held"


@pytest.mark.parametrize("outcome", ["wrong_number", "refused"])
def test_call_wrong_number_or_refusal_goes_to_a_person(outcome: str) -> None:
    state = phone_stage()
    effect = signal(state, SignalName.CALL_OUTCOME, {"outcome": outcome})
    assert effect.state.specialist_reason == f"call outcome {outcome}"
    assert effect.state.conversation_days == [TODAY]
    assert effect.state.escalation is Stage.PHONE
    assert effect.stale is CancelReason.HANDED_TO_PERSON


def test_connected_calls_keep_a_bounded_history() -> None:
    history = [TODAY - timedelta(days=30 - i) for i in range(CALL_HISTORY_KEPT)]
    effect = signal(phone_stage(conversation_days=history), SignalName.CALL_OUTCOME, {"outcome": "refused"})
    assert effect.state.conversation_days == [*history[1:], TODAY]


# --- contact details and delivery ------------------------------------------------------------------


def test_sms_undeliverable_drops_owed_service_replies() -> None:
    state = make_state(pending_service=[TemplateName.OPT_OUT_CONFIRMATION], opted_out=True)
    effect = signal(state, SignalName.SMS_UNDELIVERABLE, {"reason": "number does not exist"})
    assert effect.state.sms_undeliverable
    assert effect.state.pending_service == []
    assert effect.stale is CancelReason.SMS_UNDELIVERABLE
    assert kinds(effect) == [TimelineKind.SMS_UNDELIVERABLE]
    assert effect.entries[0].detail == "number does not exist; no further SMS, escalation by phone"
    again = signal(effect.state, SignalName.SMS_UNDELIVERABLE, {"reason": "again"})
    assert unchanged(again, effect.state) and again.entries == () and again.stale is None


def test_a_new_number_makes_messages_stale_and_may_receive_sms_again() -> None:
    state = make_state(sms_undeliverable=True)
    effect = signal(state, SignalName.UPDATE_CONTACT, {"phone": f" {OTHER_PHONE} "})
    assert effect.state.account.phone == OTHER_PHONE
    assert not effect.state.sms_undeliverable
    assert effect.stale is CancelReason.NUMBER_CHANGED
    assert effect.phone_changed
    assert kinds(effect) == [TimelineKind.CONTACT_UPDATED]
    assert effect.entries[0].detail == "updated phone"


def test_the_same_number_again_makes_nothing_stale() -> None:
    effect = signal(make_state(), SignalName.UPDATE_CONTACT, {"phone": PHONE})
    assert effect.stale is None
    assert effect.state.account.phone == PHONE
    assert kinds(effect) == [TimelineKind.CONTACT_UPDATED]


def test_update_of_zone_locale_and_window() -> None:
    effect = signal(
        make_state(),
        SignalName.UPDATE_CONTACT,
        {"timezone": "Asia/Tokyo", "locale": "en-US", "contact_after": "10:30", "contact_before": "18:00"},
    )
    account = effect.state.account
    assert (account.timezone, account.locale, account.phone) == ("Asia/Tokyo", "en-US", PHONE)
    assert effect.state.contact_after is not None and effect.state.contact_after.hour == 10
    assert effect.state.contact_before is not None and effect.state.contact_before.hour == 18
    assert effect.stale is None and not effect.phone_changed
    assert effect.entries[0].detail == "updated contact_after, contact_before, locale, timezone"


@pytest.mark.parametrize("payload", [{}, None, {"phone": None, "timezone": None}])
def test_an_empty_contact_update_is_rejected(payload: Any) -> None:
    state = make_state()
    effect = signal(state, SignalName.UPDATE_CONTACT, payload)
    assert_rejected(effect, state, "update_contact: give at least one of phone, timezone, locale")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(None, RefreshPolicy()), ({"reason": "new file"}, RefreshPolicy(reason="new file"))],
)
def test_refresh_policy_asks_the_workflow_to_resolve_it(payload: Any, expected: RefreshPolicy) -> None:
    state = make_state()
    effect = signal(state, SignalName.REFRESH_POLICY, payload)
    assert effect.refresh == expected
    assert effect.entries == () and effect.stale is None
    assert unchanged(effect, state)


# --- garbage ---------------------------------------------------------------------------------------

HUGE = "九" * 20_000 + "x" * 30_000
NESTED: Any = {"a": [{"b": {"c": [[None, 1.5, "x"]]}}], "d": {"e": {}}}
JUNK_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    10**30,
    3.5,
    float("nan"),
    "",
    " ",
    "\x00\u202e💥",
    HUGE,
    [],
    ["x"],
    {},
    NESTED,
]
JUNK_PAYLOADS: list[Any] = [
    "fifty",
    42,
    3.14,
    True,
    False,
    [],
    [{"amount": "1"}],
    HUGE,
    {"unexpected": 1},
    {"": None},
    NESTED,
]
VALID: dict[SignalName, dict[str, Any]] = {
    SignalName.REPAYMENT: {"amount": "10.00", "reference": "R-1"},
    SignalName.CUSTOMER_REPLY: {"text": "hello"},
    SignalName.PAUSE: {"reason": "check", "until": "2030-01-01T09:00:00+08:00"},
    SignalName.RESUME: {},
    SignalName.SETTLE: {"amount": "10.00", "reference": "S-1"},
    SignalName.CLOSE: {"reason": "written off"},
    SignalName.PROMISE_TO_PAY: {"date": "2030-01-01"},
    SignalName.CALL_OUTCOME: {"outcome": "reached", "promise_date": "2030-01-01"},
    SignalName.UPDATE_CONTACT: {"phone": OTHER_PHONE, "timezone": "Asia/Tokyo", "locale": "en-US"},
    SignalName.SMS_UNDELIVERABLE: {"reason": "number does not exist"},
    SignalName.REFRESH_POLICY: {"reason": "policy file changed"},
    SignalName.SELF_SERVICE: {"choice": "plan", "date": "2030-01-01", "instalments": 3, "touchpoint": 2},
    SignalName.OPEN_COMPLAINT: {"channel": "console", "note": "unhappy with the calls"},
    SignalName.ACKNOWLEDGE_COMPLAINT: {"complaint": 1, "note": "called back and explained"},
    SignalName.RESOLVE_COMPLAINT: {"complaint": 1, "outcome": "upheld", "note": "apologised"},
}


def _refused(model: type[BaseModel], payload: Any) -> bool:
    try:
        model.model_validate({} if payload is None else payload)
    except ValidationError:
        return True
    return False


def _named(junk: Any) -> str:
    """What the rejection of a whole payload of junk names: its first unknown key, else the payload."""
    return (next(iter(junk)) or "payload") if isinstance(junk, dict) and junk else "payload"


def garbage_cases() -> Iterator[tuple[SignalName, Any, str]]:
    """(signal, payload the contract refuses, what the rejection must name) for every signal: the whole
    payload replaced by junk, each field replaced by junk or removed, an unknown field added."""
    for name, model in SIGNAL_MODELS.items():
        valid = VALID[name]
        candidates: list[tuple[Any, str]] = [(junk, _named(junk)) for junk in JUNK_PAYLOADS]
        for field in model.model_fields:
            candidates += [({**valid, field: junk}, field) for junk in JUNK_VALUES]
            candidates.append(({k: v for k, v in valid.items() if k != field}, field))
        candidates.append(({**valid, "bogus": [1, 2]}, "bogus"))
        for payload, field in candidates:
            if _refused(model, payload):
                yield name, payload, field


GARBAGE = list(garbage_cases())


def test_every_signal_has_garbage_cases() -> None:
    assert set(VALID) == set(SignalName)
    assert {name for name, _, _ in GARBAGE} == set(SignalName)


@pytest.mark.parametrize(("name", "payload", "field"), GARBAGE, ids=lambda value: repr(value)[:30])
def test_garbage_is_rejected_naming_the_field_and_changes_nothing(
    name: SignalName, payload: Any, field: str
) -> None:
    for state in (make_state(), busy_state(paused=True, opted_out=True)):
        effect = signal(state, name, payload)
        assert kinds(effect) == [TimelineKind.SIGNAL_REJECTED]
        detail = effect.entries[0].detail
        assert detail.startswith(f"{name}: ")
        assert field in detail
        assert len(detail) < 2_000  # a huge payload is not repeated into the timeline
        assert unchanged(effect, state)
        assert effect.stale is None and effect.refresh is None
        assert not (effect.store_opt_out or effect.phone_changed or effect.escalated_to_person)


@pytest.mark.parametrize("until", ["9999-12-31T23:00:00-10:00", "0001-01-01T00:00:00+14:00"])
def test_a_pause_until_the_edge_of_time_is_rejected_naming_until(until: str) -> None:
    state = make_state()
    effect = signal(state, SignalName.PAUSE, {"reason": "x", "until": until})
    assert kinds(effect) == [TimelineKind.SIGNAL_REJECTED]
    assert effect.entries[0].detail.startswith("pause: until: ") and effect.state == state


@pytest.mark.parametrize("promised", ["9999-12-31", "2999-01-01"])
def test_a_promise_beyond_a_year_is_rejected_and_the_planner_never_sees_it(promised: str) -> None:
    state = make_state()
    effect = signal(state, SignalName.PROMISE_TO_PAY, {"date": promised})
    assert kinds(effect) == [TimelineKind.SIGNAL_REJECTED]
    assert "more than 366 days ahead" in effect.entries[0].detail and effect.state.promise_date is None
    called = signal(state, SignalName.CALL_OUTCOME, {"outcome": "promise_to_pay", "promise_date": promised})
    assert kinds(called) == [TimelineKind.SIGNAL_REJECTED]


# --- ended accounts --------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", list(Outcome))
@pytest.mark.parametrize("name", list(SignalName))
def test_an_ended_account_ignores_signals(outcome: Outcome, name: SignalName) -> None:
    state = busy_state(outcome=outcome, paused=True)
    for payload in (VALID[name], {"text": "STOP"}, "garbage", None):
        effect = signal(state, name, payload)
        assert effect.state is state
        assert effect.entries == () and effect.stale is None and effect.refresh is None
        assert not (effect.store_opt_out or effect.phone_changed or effect.escalated_to_person)


# --- finished SMS ----------------------------------------------------------------------------------

HELP = SmsAction(
    kind=ActionKind.SERVICE_SMS, template=TemplateName.HELP, touchpoint=4, touch_key="service:help"
)
CONFIRMATION = SmsAction(
    kind=ActionKind.SERVICE_SMS,
    template=TemplateName.OPT_OUT_CONFIRMATION,
    touchpoint=4,
    touch_key="service:opt_out_confirmation",
)
FOLLOW_UP = SmsAction(
    kind=ActionKind.REMINDER,
    template=TemplateName.FOLLOW_UP,
    touchpoint=4,
    touch_key="follow_up",
    counts_for_escalation=True,
)
PRE_DUE = SmsAction(kind=ActionKind.REMINDER, template=TemplateName.PRE_DUE, touchpoint=4, touch_key="D-7")
FIRST_OVERDUE = SmsAction(
    kind=ActionKind.REMINDER,
    template=TemplateName.FIRST_OVERDUE,
    touchpoint=4,
    touch_key="D+1",
    counts_for_escalation=True,
)


def finish(state: AccountState, action: SmsAction, status: str = "sent") -> Effect:
    before = state.model_dump()
    effect = sms_finished(state, action, status, segments=2, detail="gateway said no", today=TODAY)
    assert state.model_dump() == before, "the input state was changed in place"
    return effect


def test_a_service_reply_leaves_only_its_own_template_pending() -> None:
    state = busy_state(pending_service=[TemplateName.OPT_OUT_CONFIRMATION, TemplateName.HELP])
    effect = finish(state, HELP)
    assert effect.state.pending_service == [TemplateName.OPT_OUT_CONFIRMATION]
    assert effect.state.sms_sent == 3 and effect.state.touchpoints == 4
    # Not a reminder: no cap, cadence or escalation counts it.
    assert effect.state.sms_days == state.sms_days
    assert effect.state.done_touches == state.done_touches
    assert effect.state.last_touch_date == state.last_touch_date
    assert effect.state.unanswered_sms == state.unanswered_sms
    assert kinds(effect) == [TimelineKind.SMS_SENT]
    assert effect.entries[0].detail == "help touchpoint 4 (2 segment(s))" and effect.entries[0].audited


def test_help_finishing_after_stop_keeps_the_confirmation_pending() -> None:
    """The old crash: the HELP in flight finished after a STOP had replaced the pending list."""
    state = signal(
        busy_state(pending_service=[TemplateName.HELP]), SignalName.CUSTOMER_REPLY, {"text": "STOP"}
    ).state
    for status in ("sent", "duplicate", "rejected", "window_closed"):
        effect = finish(state, HELP, status)
        assert effect.state.pending_service == [TemplateName.OPT_OUT_CONFIRMATION], status


def test_a_service_reply_no_longer_pending_does_not_raise() -> None:
    state = busy_state(pending_service=[])
    effect = finish(state, CONFIRMATION)
    assert effect.state.pending_service == []
    assert effect.state.sms_sent == state.sms_sent + 1


def test_a_reminder_counts_towards_caps_cadence_and_escalation() -> None:
    state = busy_state(sms_not_before=NOW - timedelta(hours=1))
    effect = finish(state, FIRST_OVERDUE)
    assert effect.state.sms_days == [*state.sms_days, TODAY]
    assert effect.state.done_touches == ["D-7", "D-0", "D+1"]
    assert effect.state.last_touch_date == TODAY
    assert effect.state.unanswered_sms == state.unanswered_sms + 1
    assert effect.state.sms_sent == state.sms_sent + 1
    assert effect.state.touchpoints == 4
    assert effect.state.sms_not_before is None
    assert effect.state.pending_service == state.pending_service
    assert effect.entries[0].detail == "first_overdue touchpoint 4 (2 segment(s))"


def test_a_pre_due_reminder_does_not_count_as_unanswered() -> None:
    state = busy_state(done_touches=[])
    effect = finish(state, PRE_DUE)
    assert effect.state.unanswered_sms == state.unanswered_sms
    assert effect.state.done_touches == ["D-7"]


def test_follow_ups_are_not_done_touches_and_done_touches_are_not_doubled() -> None:
    state = busy_state(done_touches=["D-7", "D-0", "D+1"])
    assert finish(state, FOLLOW_UP).state.done_touches == ["D-7", "D-0", "D+1"]
    assert finish(state, FIRST_OVERDUE).state.done_touches == ["D-7", "D-0", "D+1"]


def test_reminder_days_keep_only_what_the_caps_need() -> None:
    days = [TODAY - timedelta(days=20 - i) for i in range(SMS_DAYS_KEPT)]
    effect = finish(busy_state(sms_days=days), FOLLOW_UP)
    assert effect.state.sms_days == [*days[1:], TODAY]
    assert len(effect.state.sms_days) == SMS_DAYS_KEPT


def test_broken_promise_and_instalment_offer_templates() -> None:
    state = busy_state(promise_broken=True, instalment_offered=False)
    broken = SmsAction(
        kind=ActionKind.REMINDER, template=TemplateName.BROKEN_PROMISE, touchpoint=4, touch_key="follow_up"
    )
    assert finish(state, broken).state.promise_broken is False
    offer = SmsAction(
        kind=ActionKind.REMINDER, template=TemplateName.INSTALMENT_OFFER, touchpoint=4, touch_key="follow_up"
    )
    assert finish(state, offer).state.instalment_offered is True


def test_a_duplicate_counts_as_sent() -> None:
    state = busy_state()
    assert (
        finish(state, FIRST_OVERDUE, "duplicate").state.model_dump()
        == finish(state, FIRST_OVERDUE).state.model_dump()
    )


def test_a_rejected_reminder_uses_its_touch_but_counts_as_no_message() -> None:
    state = busy_state()
    effect = finish(state, FIRST_OVERDUE, "rejected")
    assert effect.state.touchpoints == 4
    assert effect.state.done_touches == [*state.done_touches, "D+1"]
    assert effect.state.sms_sent == state.sms_sent
    assert effect.state.sms_days == state.sms_days
    assert effect.state.unanswered_sms == state.unanswered_sms
    assert kinds(effect) == [TimelineKind.SMS_FAILED]
    assert effect.entries[0].detail == "first_overdue touchpoint 4: gateway said no"
    assert effect.entries[0].audited


def test_a_rejected_service_reply_is_no_longer_owed() -> None:
    effect = finish(busy_state(pending_service=[TemplateName.HELP]), HELP, "rejected")
    assert effect.state.pending_service == []
    assert kinds(effect) == [TimelineKind.SMS_FAILED]


@pytest.mark.parametrize("action", [HELP, CONFIRMATION, FIRST_OVERDUE])
def test_a_closed_window_moves_the_message_and_changes_nothing_else(action: SmsAction) -> None:
    state = busy_state(pending_service=[TemplateName.HELP])
    effect = finish(state, action, "window_closed")
    assert unchanged(effect, state)
    assert kinds(effect) == [TimelineKind.DEFERRED]
    assert effect.entries[0].detail == f"{action.template}: window closed before sending; moved"
    assert not effect.entries[0].audited


def test_not_accepted_waits_for_the_next_window_with_the_same_touchpoint() -> None:
    state = busy_state()
    window_end = NOW + timedelta(hours=10)
    effect = sms_not_accepted(state, FIRST_OVERDUE, window_end, "gateway 503")
    assert effect.state.model_dump() == state.model_copy(update={"sms_not_before": window_end}).model_dump()
    assert kinds(effect) == [TimelineKind.DEFERRED]
    assert "gateway 503" in effect.entries[0].detail


@pytest.mark.parametrize("action", [FIRST_OVERDUE, HELP, CONFIRMATION])
def test_a_cancelled_sms_only_uses_up_its_touchpoint(action: SmsAction) -> None:
    state = busy_state(pending_service=[TemplateName.HELP])
    effect = sms_cancelled(state, action, CancelReason.OPTED_OUT)
    assert effect.state.model_dump() == state.model_copy(update={"touchpoints": 4}).model_dump()
    assert kinds(effect) == [TimelineKind.REMINDER_CANCELLED]
    assert effect.entries[0].detail.startswith("reminder cancelled (opted_out)")
    assert effect.entries[0].detail == f"reminder cancelled (opted_out): {action.template} touchpoint 4"


def test_touchpoints_never_go_back() -> None:
    state = busy_state(touchpoints=9)
    old = SmsAction(kind=ActionKind.REMINDER, template=TemplateName.FOLLOW_UP, touchpoint=4)
    assert finish(state, old).state.touchpoints == 9
    assert sms_cancelled(state, old, CancelReason.PAUSED).state.touchpoints == 9
    assert handoff_cancelled(state, what="x", touchpoint=4, reason=CancelReason.CLOSED).state.touchpoints == 9


# --- hand-offs -------------------------------------------------------------------------------------


def test_a_call_task_starts_the_phone_stage() -> None:
    state = busy_state()
    effect = call_task_created(
        state, attempt=1, touchpoint=4, reason="3 unanswered SMS", status="accepted", detail="", now=NOW
    )
    assert effect.state.escalation is Stage.PHONE
    assert effect.state.phone_attempt == 1 and effect.state.phone_requested_at == NOW
    assert effect.state.call_attempt_days == [*state.call_attempt_days, TODAY]
    assert effect.state.touchpoints == 4
    assert effect.state.specialist_reason is None
    assert kinds(effect) == [TimelineKind.ESCALATED_PHONE] and effect.entries[0].audited
    assert effect.entries[0].detail == "call task attempt 1 (3 unanswered SMS): accepted"


def test_a_rejected_call_task_asks_for_a_specialist() -> None:
    effect = call_task_created(
        busy_state(), attempt=2, touchpoint=5, reason="r", status="rejected", detail="no such queue", now=NOW
    )
    assert effect.state.specialist_reason == "phone team rejected the call task: no such queue"
    assert effect.state.escalation is Stage.PHONE


def test_a_specialist_hand_off_ends_automated_contact() -> None:
    state = busy_state(escalation=Stage.PHONE, specialist_reason="customer reported hardship: needs a person")
    effect = specialist_handed_off(state, touchpoint=4, reason="hardship", status="accepted")
    assert effect.state.escalation is Stage.SPECIALIST
    assert effect.state.specialist_reason is None
    assert effect.state.touchpoints == 4
    assert kinds(effect) == [TimelineKind.ESCALATED_SPECIALIST] and effect.entries[0].audited


def test_a_cancelled_hand_off_only_uses_up_its_touchpoint() -> None:
    state = busy_state(escalation=Stage.PHONE, phone_attempt=1)
    effect = handoff_cancelled(state, what="call task attempt 2", touchpoint=4, reason=CancelReason.REPAID)
    assert effect.state.model_dump() == state.model_copy(update={"touchpoints": 4}).model_dump()
    assert kinds(effect) == [TimelineKind.HANDOFF_CANCELLED]
    assert effect.entries[0].detail == "call task attempt 2 cancelled (repaid): touchpoint 4"


FINISHED: dict[str, Callable[[AccountState], Effect]] = {
    "sms_finished sent": lambda s: sms_finished(s, FIRST_OVERDUE, "sent", segments=1, detail="", today=TODAY),
    "sms_finished service": lambda s: sms_finished(s, HELP, "sent", segments=1, detail="", today=TODAY),
    "sms_finished rejected": lambda s: sms_finished(s, HELP, "rejected", segments=1, detail="", today=TODAY),
    "sms_finished window_closed": lambda s: sms_finished(
        s, HELP, "window_closed", segments=1, detail="", today=TODAY
    ),
    "sms_not_accepted": lambda s: sms_not_accepted(s, FIRST_OVERDUE, NOW, "outage"),
    "sms_cancelled": lambda s: sms_cancelled(s, HELP, CancelReason.PAUSED),
    "call_task_created": lambda s: call_task_created(
        s, attempt=2, touchpoint=4, reason="r", status="rejected", detail="d", now=NOW
    ),
    "specialist_handed_off": lambda s: specialist_handed_off(s, touchpoint=4, reason="r", status="accepted"),
    "handoff_cancelled": lambda s: handoff_cancelled(s, what="x", touchpoint=4, reason=CancelReason.CLOSED),
}


@pytest.mark.parametrize("function", list(FINISHED.values()), ids=list(FINISHED))
def test_finished_actions_never_change_the_state_they_are_given(
    function: Callable[[AccountState], Effect],
) -> None:
    state = busy_state(
        pending_service=[TemplateName.OPT_OUT_CONFIRMATION, TemplateName.HELP], specialist_reason="x"
    )
    before = state.model_dump()
    effect = function(state)
    assert state.model_dump() == before
    assert effect.state is not state


# --- which actions a change makes unwanted ---------------------------------------------------------

ENDED = {CancelReason.REPAID, CancelReason.SETTLED, CancelReason.CLOSED}
CANCELLED_BY: dict[tuple[ActionKind, TemplateName | None], set[CancelReason]] = {
    (ActionKind.REMINDER, TemplateName.FIRST_OVERDUE): set(CancelReason),
    (ActionKind.REMINDER, TemplateName.PRE_DUE): set(CancelReason),
    (ActionKind.REMINDER, TemplateName.BROKEN_PROMISE): set(CancelReason),
    (ActionKind.SERVICE_SMS, TemplateName.HELP): ENDED
    | {
        CancelReason.OPTED_OUT,
        CancelReason.AMOUNT_CHANGED,
        CancelReason.PAUSED,
        CancelReason.COMPLAINT,
        CancelReason.NUMBER_CHANGED,
        CancelReason.SMS_UNDELIVERABLE,
    },
    (ActionKind.SERVICE_SMS, TemplateName.OPT_OUT_CONFIRMATION): {
        CancelReason.SMS_UNDELIVERABLE,
        CancelReason.AMOUNT_CHANGED,
        CancelReason.REPAID,
        CancelReason.SETTLED,
        CancelReason.CLOSED,
    },
    (ActionKind.CALL_TASK, None): ENDED
    | {CancelReason.REACHED, CancelReason.PROMISE_TO_PAY, CancelReason.PLAN_CHOSEN, CancelReason.COMPLAINT},
    (ActionKind.SPECIALIST, None): ENDED,
}


@pytest.mark.parametrize("reason", list(CancelReason))
@pytest.mark.parametrize(("kind", "template"), list(CANCELLED_BY))
def test_cancels(kind: ActionKind, template: TemplateName | None, reason: CancelReason) -> None:
    assert cancels(kind, template, reason) is (reason in CANCELLED_BY[kind, template])


def test_help_is_not_cancelled_by_a_promise_or_hardship() -> None:
    for reason in (CancelReason.PROMISE_TO_PAY, CancelReason.HARDSHIP, CancelReason.DISPUTE):
        assert not cancels(ActionKind.SERVICE_SMS, TemplateName.HELP, reason)


# --- a number the carrier reported unreachable ---------------------------------------------------


@pytest.mark.parametrize("text", ["HELP", "STOP"])
def test_no_service_reply_is_owed_to_an_unreachable_number(text: str) -> None:
    state = make_state(sms_undeliverable=True)
    effect = signal(state, SignalName.CUSTOMER_REPLY, {"text": text})
    assert effect.state.pending_service == []
    assert effect.state.opted_out is (text == "STOP")


def test_the_same_number_again_does_not_make_it_reachable() -> None:
    state = make_state(sms_undeliverable=True)
    same = signal(state, SignalName.UPDATE_CONTACT, {"phone": PHONE})
    assert same.state.sms_undeliverable and same.stale is None
    other = signal(state, SignalName.UPDATE_CONTACT, {"phone": OTHER_PHONE})
    assert not other.state.sms_undeliverable and other.stale is CancelReason.NUMBER_CHANGED


def test_a_reached_call_makes_the_next_contact_a_follow_up() -> None:
    """The conversation was the overdue contact: an account that cannot get SMS is not called again at
    once, but a follow-up interval later."""
    state = make_state(sms_undeliverable=True, escalation=Stage.PHONE, phone_attempt=1)
    effect = signal(state, SignalName.CALL_OUTCOME, {"outcome": "reached"})
    assert "D+1" in effect.state.done_touches and effect.state.last_touch_date == TODAY
    again = signal(effect.state, SignalName.CALL_OUTCOME, {"outcome": "reached"})
    assert again.state.done_touches.count("D+1") == 1
