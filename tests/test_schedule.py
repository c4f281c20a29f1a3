"""The contact policy as a pure function: ``plan_next(state, now)`` with explicit UTC instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindly.domain.contract import AccountInput, Outcome, Stage, TemplateName
from kindly.domain.policy.calendars import load_calendar
from kindly.domain.policy.limits import blocked_reason
from kindly.domain.policy.model import ContactPolicy
from kindly.domain.policy.schedule import Deferral, StepKind, first_allowed_moment, local_date, plan_next
from kindly.domain.state import AccountState, current_stage

SHANGHAI = "Asia/Shanghai"
NEW_YORK = "America/New_York"
DUE = date(2026, 11, 20)  # a Friday, no cn holiday anywhere near it
OVERDUE_DONE = ["D-7", "D-0", "D+1"]


def make_state(
    *,
    due: date = DUE,
    timezone: str = SHANGHAI,
    started_on: date | None = None,
    birthday: date | None = None,
    policy: ContactPolicy | None = None,
    **fields: Any,
) -> AccountState:
    account = AccountInput(
        account_id="ACC-1",
        customer_name="Li Lei",
        phone="+8613800138000",
        timezone=timezone,
        locale="zh-CN",
        amount_due="1200.00",
        due_date=due,
        birthday=birthday,
    )
    return AccountState(
        account=account,
        policy=policy or ContactPolicy(),
        started_on=started_on or due - timedelta(days=30),
        amount_due=account.amount_due,
        **fields,
    )


def local(day: date, hour: int, minute: int = 0, zone: str = SHANGHAI) -> datetime:
    """A local wall-clock time as an aware UTC instant."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- pre-due and the first overdue touch -------------------------------------------------------


def test_started_early_gets_d_minus_7_at_nine_local() -> None:
    state = make_state(started_on=DUE - timedelta(days=10))
    step = plan_next(state, local(DUE - timedelta(days=10), 11))
    assert step.kind is StepKind.SMS
    assert step.template is TemplateName.PRE_DUE
    assert step.touch_key == "D-7"
    assert step.at == utc(2026, 11, 13, 1, 0)  # 09:00 in Shanghai
    assert step.not_after == utc(2026, 11, 13, 12, 0)  # 20:00 in Shanghai
    assert not step.counts_for_escalation
    assert step.superseded == ()


def test_started_three_days_before_due_skips_d_minus_7() -> None:
    state = make_state(started_on=DUE - timedelta(days=3))
    step = plan_next(state, local(DUE - timedelta(days=3), 10))
    assert step.kind is StepKind.SMS
    assert step.touch_key == "D-0"
    assert step.template is TemplateName.DUE_TODAY
    assert step.at == local(DUE, 9)
    assert step.superseded == ()  # never owed, so not "skipped" either


def test_started_at_night_on_due_day_supersedes_due_reminder() -> None:
    state = make_state(started_on=DUE)
    step = plan_next(state, local(DUE, 21))
    assert step.kind is StepKind.SMS
    assert step.touch_key == "D+1"
    assert step.template is TemplateName.FIRST_OVERDUE
    assert step.at == local(DUE + timedelta(days=1), 9)
    assert step.counts_for_escalation
    assert [key for key, _ in step.superseded] == ["D-0"]
    assert "quiet_hours" in step.superseded[0][1]


def test_pre_due_reminder_blocked_on_its_last_day_names_the_reason() -> None:
    # D-0 falls on a holiday: it cannot go later than the due day, so it is skipped.
    due = date(2026, 10, 1)
    state = make_state(due=due, started_on=date(2026, 9, 28), done_touches=["D-7"])
    step = plan_next(state, local(date(2026, 9, 28), 10))
    assert step.superseded == (("D-0", "deferred past its last day (holiday)"),)
    assert step.touch_key == "D+1"
    assert step.at == local(date(2026, 10, 8), 9)


def test_passed_pre_due_reminders_are_superseded_not_sent_late() -> None:
    state = make_state(started_on=DUE - timedelta(days=10))
    step = plan_next(state, local(DUE + timedelta(days=3), 10))
    assert [key for key, _ in step.superseded] == ["D-7", "D-0"]
    assert step.touch_key == "D+1"
    assert step.at == local(DUE + timedelta(days=3), 10)


# --- follow-ups, deferrals and the daily cap ---------------------------------------------------


def test_follow_up_seven_days_after_last_touch() -> None:
    last = DUE + timedelta(days=1)
    state = make_state(done_touches=OVERDUE_DONE, last_touch_date=last, sms_days=[last], unanswered_sms=1)
    step = plan_next(state, local(last + timedelta(days=1), 12))
    assert step.kind is StepKind.SMS
    assert step.touch_key == "follow_up"
    assert step.template is TemplateName.FOLLOW_UP
    assert step.at == local(last + timedelta(days=7), 9)
    assert step.nominal_day == last + timedelta(days=7)
    assert step.counts_for_escalation


def test_holiday_defers_to_first_working_day() -> None:
    due = date(2026, 9, 30)
    state = make_state(due=due, done_touches=["D-7", "D-0"], last_touch_date=due, sms_days=[due])
    step = plan_next(state, local(due, 20, 30))
    assert step.touch_key == "D+1"
    assert step.at == local(date(2026, 10, 8), 9)
    assert local_date(state, step.at) == date(2026, 10, 8)
    assert {d.reason for d in step.deferrals} == {"holiday"}
    assert [d.day for d in step.deferrals] == [date(2026, 10, d) for d in range(1, 8)]


def test_birthday_defers_one_day() -> None:
    last = DUE + timedelta(days=1)
    follow_up = last + timedelta(days=7)
    state = make_state(
        birthday=date(1990, follow_up.month, follow_up.day),
        done_touches=OVERDUE_DONE,
        last_touch_date=last,
    )
    step = plan_next(state, local(last, 15))
    assert step.at == local(follow_up + timedelta(days=1), 9)
    assert step.deferrals == (Deferral("birthday", follow_up),)


def test_birthday_ignored_when_policy_allows() -> None:
    state = make_state(birthday=date(1990, 11, 22), policy=ContactPolicy(avoid_birthday=False))
    assert blocked_reason(state.policy, state.account.birthday, date(2026, 11, 22)) is None
    assert blocked_reason(ContactPolicy(), date(1990, 11, 22), date(2026, 11, 22)) == "birthday"


def test_daily_cap_moves_to_tomorrow() -> None:
    today = DUE + timedelta(days=10)
    state = make_state(
        done_touches=OVERDUE_DONE,
        last_touch_date=today - timedelta(days=7),
        sms_days=[today],
    )
    step = plan_next(state, local(today, 10))
    assert step.kind is StepKind.SMS
    assert step.at == local(today + timedelta(days=1), 9)
    assert step.deferrals == (Deferral("daily_cap", today),)


def test_in_window_now_is_used_as_is() -> None:
    today = DUE + timedelta(days=10)
    state = make_state(done_touches=OVERDUE_DONE, last_touch_date=today - timedelta(days=7))
    now = local(today, 14, 37)
    assert plan_next(state, now).at == now


def test_after_window_goes_next_morning() -> None:
    today = DUE + timedelta(days=10)
    state = make_state(done_touches=OVERDUE_DONE, last_touch_date=today - timedelta(days=7))
    assert plan_next(state, local(today, 20)).at == local(today + timedelta(days=1), 9)


@pytest.mark.parametrize(
    ("last_touch", "expected_utc"),
    [
        (date(2026, 10, 24), utc(2026, 10, 31, 13, 0)),  # EDT, UTC-4
        (date(2026, 10, 25), utc(2026, 11, 1, 14, 0)),  # the change day itself, EST
        (date(2026, 10, 26), utc(2026, 11, 2, 14, 0)),  # EST, UTC-5
    ],
)
def test_new_york_dst_change_keeps_nine_local(last_touch: date, expected_utc: datetime) -> None:
    state = make_state(
        due=date(2026, 10, 1),
        timezone=NEW_YORK,
        done_touches=OVERDUE_DONE,
        last_touch_date=last_touch,
    )
    step = plan_next(state, local(last_touch, 12, zone=NEW_YORK))
    assert step.at == expected_utc
    assert step.at is not None
    assert step.at.astimezone(ZoneInfo(NEW_YORK)).time() == time(9, 0)
    assert step.not_after is not None
    assert step.not_after.astimezone(ZoneInfo(NEW_YORK)).time() == time(20, 0)


# --- escalation ---------------------------------------------------------------------------------


def test_three_unanswered_sms_escalate_to_call_on_follow_up_day() -> None:
    last = DUE + timedelta(days=15)
    state = make_state(done_touches=OVERDUE_DONE, last_touch_date=last, unanswered_sms=3, sms_days=[last])
    step = plan_next(state, local(last, 12))
    assert step.kind is StepKind.CALL
    assert step.touch_key == "call-1"
    assert step.attempt == 1
    assert step.template is None
    assert step.at == local(last + timedelta(days=7), 9)


def test_two_unanswered_sms_still_send_sms() -> None:
    last = DUE + timedelta(days=8)
    state = make_state(done_touches=OVERDUE_DONE, last_touch_date=last, unanswered_sms=2)
    assert plan_next(state, local(last, 12)).kind is StepKind.SMS


def test_route_straight_to_specialist() -> None:
    last = DUE + timedelta(days=15)
    state = make_state(
        done_touches=OVERDUE_DONE,
        last_touch_date=last,
        unanswered_sms=3,
        policy=ContactPolicy(route_straight_to_specialist=True),
    )
    step = plan_next(state, local(last, 12))
    assert step.kind is StepKind.SPECIALIST
    assert step.touch_key == "specialist"


def test_phone_second_attempt_after_outcome_wait() -> None:
    requested = local(DUE + timedelta(days=22), 10)
    state = make_state(
        done_touches=OVERDUE_DONE,
        last_touch_date=DUE + timedelta(days=15),
        unanswered_sms=3,
        escalation=Stage.PHONE,
        phone_attempt=1,
        phone_requested_at=requested,
    )
    step = plan_next(state, requested + timedelta(hours=1))
    assert step.kind is StepKind.CALL
    assert step.attempt == 2
    assert step.touch_key == "call-2"
    assert step.at == requested + timedelta(hours=48)


def test_phone_second_attempt_waits_for_window() -> None:
    requested = local(DUE + timedelta(days=22), 19, 30)
    state = make_state(escalation=Stage.PHONE, phone_attempt=1, phone_requested_at=requested)
    step = plan_next(state, requested)
    assert step.kind is StepKind.CALL
    assert step.at == requested + timedelta(hours=48)  # 19:30 is still inside the window
    late = make_state(
        escalation=Stage.PHONE, phone_attempt=1, phone_requested_at=requested + timedelta(hours=1)
    )
    assert plan_next(late, requested).at == local(DUE + timedelta(days=25), 9)


def test_phone_attempts_used_up_hand_off_to_specialist() -> None:
    requested = local(DUE + timedelta(days=24), 10)
    state = make_state(escalation=Stage.PHONE, phone_attempt=2, phone_requested_at=requested)
    step = plan_next(state, requested + timedelta(hours=1))
    assert step.kind is StepKind.SPECIALIST
    assert step.at == requested + timedelta(hours=48)


def test_specialist_stage_is_idle_and_owed_hand_off_is_immediate() -> None:
    now = local(DUE + timedelta(days=30), 23)
    assert plan_next(make_state(escalation=Stage.SPECIALIST), now).kind is StepKind.IDLE
    owed = plan_next(make_state(specialist_reason="call outcome refused"), now)
    assert (owed.kind, owed.at) == (StepKind.SPECIALIST, now)


# --- holds: promise, pause, opt-out -------------------------------------------------------------


def test_promise_holds_contact_then_broken_promise() -> None:
    last = DUE + timedelta(days=1)
    promise = DUE + timedelta(days=10)
    state = make_state(done_touches=OVERDUE_DONE, last_touch_date=last, promise_date=promise)
    step = plan_next(state, local(last + timedelta(days=1), 12))
    assert step.kind is StepKind.SMS
    assert step.at == local(promise + timedelta(days=1), 9)
    assert step.template is TemplateName.BROKEN_PROMISE


def test_promise_before_due_holds_the_first_overdue_touch() -> None:
    promise = DUE + timedelta(days=3)
    state = make_state(done_touches=["D-7"], promise_date=promise)
    step = plan_next(state, local(DUE - timedelta(days=2), 12))
    assert [key for key, _ in step.superseded] == ["D-0"]
    assert step.touch_key == "D+1"
    assert step.template is TemplateName.BROKEN_PROMISE
    assert local_date(state, step.at or utc(2000, 1, 1)) == promise + timedelta(days=1)


def test_paused_without_until_is_idle() -> None:
    state = make_state(paused=True, pause_reason="dispute")
    assert plan_next(state, local(DUE + timedelta(days=5), 10)).kind is StepKind.IDLE


def test_paused_with_until_resumes_then() -> None:
    until = utc(2026, 12, 1, 1, 0)
    state = make_state(paused=True, pause_reason="hardship", paused_until=until)
    step = plan_next(state, local(DUE + timedelta(days=5), 10))
    assert (step.kind, step.at, step.touch_key) == (StepKind.RESUME, until, "resume")
    past = plan_next(state, until + timedelta(hours=2))
    assert past.at == until + timedelta(hours=2)


def test_ended_account_is_idle() -> None:
    state = make_state(outcome=Outcome.REPAID)
    assert plan_next(state, local(DUE, 10)).kind is StepKind.IDLE


def test_opted_out_pre_due_supersedes_reminders() -> None:
    state = make_state(started_on=DUE - timedelta(days=10), opted_out=True)
    step = plan_next(state, local(DUE - timedelta(days=9), 10))
    assert step.superseded == (
        ("D-7", "customer opted out of SMS"),
        ("D-0", "customer opted out of SMS"),
    )
    assert step.kind is StepKind.CALL
    assert step.at == local(DUE + timedelta(days=1), 9)


def test_opted_out_overdue_becomes_call() -> None:
    last = DUE + timedelta(days=1)
    state = make_state(done_touches=OVERDUE_DONE, last_touch_date=last, opted_out=True, sms_days=[last])
    step = plan_next(state, local(last, 12))
    assert step.kind is StepKind.CALL
    assert step.template is None
    assert step.at == local(last + timedelta(days=7), 9)


# --- service messages ---------------------------------------------------------------------------


def test_help_reply_goes_in_service_window_late_evening() -> None:
    today = DUE + timedelta(days=3)
    state = make_state(pending_service=[TemplateName.HELP], sms_days=[today])
    now = local(today, 21, 30)
    step = plan_next(state, now)
    assert step.kind is StepKind.SERVICE_SMS
    assert step.template is TemplateName.HELP
    assert step.at == now  # not capped, and 21:30 is inside 08:00-22:00
    assert step.not_after == local(today, 22)


def test_help_reply_after_service_window_waits_for_eight() -> None:
    today = DUE + timedelta(days=3)
    state = make_state(pending_service=[TemplateName.HELP])
    step = plan_next(state, local(today, 23))
    assert step.kind is StepKind.SERVICE_SMS
    assert step.at == local(today + timedelta(days=1), 8)


def test_opt_out_confirmation_goes_although_opted_out() -> None:
    today = DUE + timedelta(days=3)
    state = make_state(opted_out=True, pending_service=[TemplateName.OPT_OUT_CONFIRMATION])
    step = plan_next(state, local(today, 9))
    assert (step.kind, step.template) == (StepKind.SERVICE_SMS, TemplateName.OPT_OUT_CONFIRMATION)


# --- restarting after a pause -------------------------------------------------------------------


def test_long_pause_restarts_with_one_message_today() -> None:
    today = DUE + timedelta(days=50)
    state = make_state(
        done_touches=OVERDUE_DONE,
        last_touch_date=today - timedelta(days=40),
        unanswered_sms=1,
    )
    now = local(today, 11)
    step = plan_next(state, now)
    assert step.kind is StepKind.SMS
    assert step.at == now
    # After that one message the next follow-up is a full interval away, not another catch-up.
    after = state.model_copy(update={"last_touch_date": today, "sms_days": [today], "unanswered_sms": 2})
    nxt = plan_next(after, now + timedelta(minutes=1))
    assert nxt.at == local(today + timedelta(days=7), 9)


def test_first_allowed_moment_search_gives_up() -> None:
    everything = [date(2026, 1, 1) + timedelta(days=n) for n in range(800)]
    state = make_state(policy=ContactPolicy(blocked_dates=everything))
    with pytest.raises(ValueError, match="no allowed contact day"):
        first_allowed_moment(state, date(2026, 1, 1), utc(2026, 1, 1))


# --- stage --------------------------------------------------------------------------------------


def test_current_stage() -> None:
    state = make_state()
    assert current_stage(state, DUE - timedelta(days=1)) is Stage.PRE_DUE
    assert current_stage(state, DUE) is Stage.DUE
    assert current_stage(state, DUE + timedelta(days=1)) is Stage.OVERDUE
    assert current_stage(make_state(paused=True), DUE) is Stage.PAUSED
    assert current_stage(make_state(promise_date=DUE), DUE + timedelta(days=1)) is Stage.PROMISE
    assert current_stage(make_state(escalation=Stage.PHONE), DUE) is Stage.PHONE
    assert current_stage(make_state(paused=True, outcome=Outcome.SETTLED), DUE) is Stage.SETTLED


# --- property: whatever the state, an SMS step respects window, holidays and the cap ------------

ZONES = [SHANGHAI, NEW_YORK, "Europe/London", "Australia/Sydney", "Asia/Kolkata", "UTC"]
CN = load_calendar("cn")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[AccountState, datetime]:
    now = draw(
        st.datetimes(
            min_value=datetime(2026, 1, 1),
            max_value=datetime(2027, 12, 31, 23, 59),
            timezones=st.just(UTC),
        )
    )
    zone = draw(st.sampled_from(ZONES))
    today = now.astimezone(ZoneInfo(zone)).date()

    def near(low: int, high: int) -> st.SearchStrategy[date]:
        return st.integers(low, high).map(lambda n: today + timedelta(days=n))

    birthday = draw(st.none() | near(-3, 30).map(lambda d: d.replace(year=1990) if d.day != 29 else None))
    state = make_state(
        due=draw(near(-60, 60)),
        timezone=zone,
        started_on=draw(near(-90, 0)),
        birthday=birthday,
        done_touches=draw(st.lists(st.sampled_from(OVERDUE_DONE), unique=True)),
        last_touch_date=draw(st.none() | near(-60, 0)),
        sms_days=draw(st.lists(near(-10, 12), max_size=8)),
        unanswered_sms=draw(st.integers(0, 4)),
        promise_date=draw(st.none() | near(-5, 20)),
        opted_out=draw(st.booleans()),
    )
    return state, now


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_sms_steps_respect_window_holidays_birthday_and_cap(scenario: tuple[AccountState, datetime]) -> None:
    state, now = scenario
    step = plan_next(state, now)
    assert step.kind in (StepKind.SMS, StepKind.CALL, StepKind.SPECIALIST)
    assert step.at is not None
    assert step.at >= now
    if step.kind is not StepKind.SMS:
        return
    assert not state.opted_out
    moment = step.at.astimezone(ZoneInfo(state.account.timezone))
    assert time(9, 0) <= moment.time() < time(20, 0)
    assert step.not_after is not None and step.at < step.not_after
    assert not CN.is_holiday(moment.date())
    assert state.sms_days.count(moment.date()) < state.policy.max_sms_per_day
    birthday = state.account.birthday
    assert birthday is None or (birthday.month, birthday.day) != (moment.month, moment.day)
    if state.promise_date is not None:
        assert moment.date() > state.promise_date


# --- replies the customer asked for, and promises ----------------------------------------------


def test_help_reply_on_a_holiday_is_not_held_for_the_holiday() -> None:
    state = make_state(due=date(2026, 9, 20), pending_service=[TemplateName.HELP])
    step = plan_next(state, local(date(2026, 10, 2), 15))
    assert step.kind is StepKind.SERVICE_SMS
    assert step.at == local(date(2026, 10, 2), 15), "the customer asked: answer now, holiday or not"


def test_opt_out_is_confirmed_even_while_paused() -> None:
    state = make_state(paused=True, pending_service=[TemplateName.OPT_OUT_CONFIRMATION])
    step = plan_next(state, local(DUE + timedelta(days=3), 10))
    assert step.kind is StepKind.SERVICE_SMS
    assert step.template is TemplateName.OPT_OUT_CONFIRMATION


def test_broken_promise_is_chased_the_day_after_grace_not_at_the_next_slot() -> None:
    promised = DUE + timedelta(days=4)
    state = make_state(
        done_touches=OVERDUE_DONE,
        last_touch_date=DUE + timedelta(days=1),
        promise_date=promised,
    )
    step = plan_next(state, local(DUE + timedelta(days=2), 10))
    assert step.template is TemplateName.BROKEN_PROMISE
    assert local_date(state, step.at or utc(2000, 1, 1)) == promised + timedelta(days=1)


def test_hand_off_to_a_person_goes_at_once_even_while_paused() -> None:
    state = make_state(paused=True, specialist_reason="customer reported hardship: needs a person")
    now = local(DUE + timedelta(days=3), 23)
    step = plan_next(state, now)
    assert step.kind is StepKind.SPECIALIST and step.at == now
