"""The regimes' phone-contact limits (``REGIMES``) as ``plan_next`` applies them to call tasks."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

import pytest

from kindly.domain.contract import Stage
from kindly.domain.policy.limits import call_limit_reason
from kindly.domain.policy.model import REGIMES, ContactPolicy, RegimeRules
from kindly.domain.policy.schedule import DEFERRAL_REASONS, Deferral, StepKind, plan_next
from kindly.domain.state import AccountState
from tests.test_schedule import NEW_YORK, OVERDUE_DONE, SHANGHAI, local, make_state

TODAY = date(2026, 11, 30)  # a Monday: no cn or us holiday from here to mid-December
US = ContactPolicy(regime="us")


def days(*offsets: int) -> list[date]:
    return [TODAY + timedelta(days=offset) for offset in offsets]


def phone_state(**fields: Any) -> AccountState:
    return make_state(done_touches=OVERDUE_DONE, escalation=Stage.PHONE, **fields)


def test_limits_are_data_in_the_regimes_table() -> None:
    assert REGIMES["cn"].max_call_attempts_per_day == 6
    assert REGIMES["cn"].max_conversations_per_day == 3
    assert REGIMES["us"].max_call_attempts_per_7_days == 7
    assert REGIMES["us"].no_call_days_after_conversation == 7
    assert {"call_cap", "after_conversation"} <= DEFERRAL_REASONS


def test_a_cap_beyond_the_kept_history_is_refused() -> None:
    with pytest.raises(ValueError, match="max_call_attempts_per_7_days"):
        RegimeRules(time(8), time(21), "us", "test", max_call_attempts_per_7_days=15)


def test_us_no_call_within_seven_days_after_a_conversation() -> None:
    state = phone_state(timezone=NEW_YORK, policy=US, conversation_days=days(-3))
    step = plan_next(state, local(TODAY, 10, zone=NEW_YORK))
    assert step.kind is StepKind.CALL
    # The conversation's day is the first of the seven: the first allowed day is the 7th after it.
    assert step.at == local(TODAY + timedelta(days=4), 9, zone=NEW_YORK)
    assert step.deferrals == tuple(Deferral("after_conversation", d) for d in days(0, 1, 2, 3))


def test_us_escalation_from_cadence_also_waits_after_a_conversation() -> None:
    last = TODAY - timedelta(days=7)
    state = make_state(
        timezone=NEW_YORK,
        policy=US,
        done_touches=OVERDUE_DONE,
        last_touch_date=last,
        unanswered_sms=3,
        conversation_days=days(-2),
    )
    step = plan_next(state, local(TODAY, 10, zone=NEW_YORK))
    assert step.kind is StepKind.CALL
    assert step.at == local(TODAY + timedelta(days=5), 9, zone=NEW_YORK)
    assert {d.reason for d in step.deferrals} == {"after_conversation"}


def test_us_seven_attempts_in_the_last_six_days_defer() -> None:
    attempts = days(-6, -6, -5, -4, -3, -2, -1)
    state = phone_state(timezone=NEW_YORK, policy=US, call_attempt_days=attempts)
    step = plan_next(state, local(TODAY, 10, zone=NEW_YORK))
    assert step.kind is StepKind.CALL
    # Tomorrow's 7 days (from 5 days ago) hold only five attempts.
    assert step.at == local(TODAY + timedelta(days=1), 9, zone=NEW_YORK)
    assert step.deferrals == (Deferral("call_cap", TODAY),)


def test_us_six_attempts_in_seven_days_still_allow_a_seventh() -> None:
    state = phone_state(timezone=NEW_YORK, policy=US, call_attempt_days=days(-6, -5, -4, -3, -2, -1))
    assert call_limit_reason(state, TODAY) is None


def test_cn_six_attempts_today_defer_to_tomorrow() -> None:
    state = phone_state(call_attempt_days=[TODAY] * 6)
    step = plan_next(state, local(TODAY, 10))
    assert step.kind is StepKind.CALL
    assert step.at == local(TODAY + timedelta(days=1), 9)
    assert step.deferrals == (Deferral("call_cap", TODAY),)


def test_cn_three_connected_calls_today_defer() -> None:
    state = phone_state(call_attempt_days=[TODAY] * 3, conversation_days=[TODAY] * 3)
    step = plan_next(state, local(TODAY, 10))
    assert step.kind is StepKind.CALL
    assert step.at == local(TODAY + timedelta(days=1), 9)
    assert step.deferrals == (Deferral("call_cap", TODAY),)


def test_cn_has_no_seven_day_or_after_conversation_limit() -> None:
    state = phone_state(call_attempt_days=[TODAY - timedelta(days=1)] * 6, conversation_days=days(-1))
    assert call_limit_reason(state, TODAY) is None


@pytest.mark.parametrize(
    ("timezone", "policy"), [(SHANGHAI, ContactPolicy()), (NEW_YORK, US)], ids=["cn", "us"]
)
def test_normal_case_unaffected(timezone: str, policy: ContactPolicy) -> None:
    state = phone_state(
        timezone=timezone,
        policy=policy,
        call_attempt_days=days(-1),
        conversation_days=[TODAY - timedelta(days=10)],
    )
    step = plan_next(state, local(TODAY, 10, zone=timezone))
    assert step.kind is StepKind.CALL
    assert step.at == local(TODAY, 10, zone=timezone)
    assert step.deferrals == ()


def test_sms_are_not_held_by_call_limits() -> None:
    last = TODAY - timedelta(days=7)
    state = make_state(
        timezone=NEW_YORK,
        policy=US,
        done_touches=OVERDUE_DONE,
        last_touch_date=last,
        unanswered_sms=1,
        conversation_days=[TODAY],
    )
    step = plan_next(state, local(TODAY, 10, zone=NEW_YORK))
    assert step.kind is StepKind.SMS
    assert step.at == local(TODAY, 10, zone=NEW_YORK)
