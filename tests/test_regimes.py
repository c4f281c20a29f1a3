"""Contact rules per regime (cn, us) and per customer: legal windows, stated windows, SMS caps."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kindly.domain.contract import TemplateName
from kindly.domain.policy.calendars import load_calendar
from kindly.domain.policy.model import BUILT_IN_POLICIES, REGIMES, ContactPolicy, load_policies
from kindly.domain.policy.schedule import DEFERRAL_REASONS, Deferral, StepKind, plan_next
from kindly.domain.state import AccountState
from kindly.errors import ConfigurationError
from tests.test_schedule import DUE, NEW_YORK, OVERDUE_DONE, SHANGHAI, local, make_state

US_WIDE = ContactPolicy(regime="us", holiday_calendar="us", window_start=time(8), window_end=time(21))
"""A us policy whose preferred window is the whole legal window: only Regulation F bounds it."""

# --- regimes as data, and validation -----------------------------------------------------------


def test_regime_table_gives_legal_window_and_calendar() -> None:
    assert (REGIMES["cn"].legal_start, REGIMES["cn"].legal_end) == (time(8), time(22))
    assert (REGIMES["us"].legal_start, REGIMES["us"].legal_end) == (time(8), time(21))
    assert REGIMES["cn"].holiday_calendar == "cn"
    assert REGIMES["us"].holiday_calendar == "us"


def test_us_policy_takes_the_regime_defaults() -> None:
    policy = ContactPolicy(regime="us")
    assert policy.holiday_calendar == "us"
    assert (policy.service_window_start, policy.service_window_end) == (time(8), time(21))
    cn = ContactPolicy()
    assert cn.regime == "cn" and cn.holiday_calendar == "cn"
    assert (cn.service_window_start, cn.service_window_end) == (time(8), time(22))
    assert ContactPolicy(regime="us", holiday_calendar=None).holiday_calendar is None


def test_built_in_segments_include_us_standard() -> None:
    us = BUILT_IN_POLICIES["us_standard"]
    assert us.regime == "us" and us.holiday_calendar == "us"
    for segment in ("standard", "gentle", "high_risk"):
        assert BUILT_IN_POLICIES[segment].regime == "cn"
    # A policy serialised before regimes existed (no "regime" key) still loads, as cn.
    old = BUILT_IN_POLICIES["standard"].model_dump(mode="json")
    del old["regime"], old["max_sms_per_7_days"]
    assert ContactPolicy.model_validate(old) == BUILT_IN_POLICIES["standard"]


def test_window_outside_the_us_legal_window_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"preferred window 09:00-21:30 .* legal window 08:00-21:00"):
        ContactPolicy(regime="us", window_end=time(21, 30))
    with pytest.raises(ValidationError, match=r"preferred window 07:30-20:00 .* legal window"):
        ContactPolicy(regime="us", window_start=time(7, 30))
    with pytest.raises(ValidationError, match=r"service window 08:00-22:00 .* regime 'us'"):
        ContactPolicy(regime="us", service_window_end=time(22))
    # The same preferred window is lawful in cn.
    assert ContactPolicy(regime="cn", window_end=time(21, 30)).window_end == time(21, 30)


def test_policy_file_segment_outside_legal_window_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps({"acme_us": {"regime": "us", "window_end": "21:30"}}), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"(?s)acme_us.*legal window 08:00-21:00"):
        load_policies(path)


def test_policy_file_segment_moved_to_us_takes_us_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps({"acme_us": {"regime": "us"}, "gentle": {"regime": "us"}}), encoding="utf-8")
    policies = load_policies(path)
    for segment in ("acme_us", "gentle"):
        assert policies[segment].holiday_calendar == "us"
        assert policies[segment].service_window_end == time(21)
    assert policies["gentle"].follow_up_interval_days == 10


# --- examples ----------------------------------------------------------------------------------

FOLLOW_UP_DAY = DUE + timedelta(days=8)  # Saturday 2026-11-28: no cn or us holiday


def follow_up_state(policy: ContactPolicy, timezone: str = NEW_YORK, **fields: object) -> AccountState:
    last = DUE + timedelta(days=1)
    return make_state(
        timezone=timezone,
        policy=policy,
        done_touches=OVERDUE_DONE,
        last_touch_date=last,
        sms_days=[DUE - timedelta(days=7), DUE, last],
        **fields,  # type: ignore[arg-type]
    )


def test_us_customer_at_half_past_eight_is_contacted_now() -> None:
    now = local(FOLLOW_UP_DAY, 8, 30, NEW_YORK)
    step = plan_next(follow_up_state(US_WIDE), now)
    assert step.kind is StepKind.SMS
    assert step.at == now
    assert step.not_after == local(FOLLOW_UP_DAY, 21, 0, NEW_YORK)


def test_us_customer_at_half_past_nine_pm_waits_for_eight_next_morning() -> None:
    now = local(FOLLOW_UP_DAY, 21, 30, NEW_YORK)
    step = plan_next(follow_up_state(US_WIDE), now)
    assert step.kind is StepKind.SMS
    assert step.at == local(FOLLOW_UP_DAY + timedelta(days=1), 8, 0, NEW_YORK)
    # The same hour is lawful under cn rules with the same preferred window widened to 22:00.
    cn_wide = ContactPolicy(window_start=time(8), window_end=time(22))
    assert plan_next(follow_up_state(cn_wide), now).at == now


def test_us_help_reply_at_half_past_nine_pm_waits_for_eight() -> None:
    state = make_state(timezone=NEW_YORK, policy=BUILT_IN_POLICIES["us_standard"])
    state = state.model_copy(update={"pending_service": [TemplateName.HELP]})
    step = plan_next(state, local(FOLLOW_UP_DAY, 21, 30, NEW_YORK))
    assert step.kind is StepKind.SERVICE_SMS
    assert step.at == local(FOLLOW_UP_DAY + timedelta(days=1), 8, 0, NEW_YORK)


def test_us_federal_holiday_defers() -> None:
    thanksgiving = date(2026, 11, 26)
    assert load_calendar("us").is_holiday(thanksgiving)
    state = make_state(timezone=NEW_YORK, policy=BUILT_IN_POLICIES["us_standard"])
    state = state.model_copy(
        update={"done_touches": OVERDUE_DONE, "last_touch_date": thanksgiving - timedelta(days=7)}
    )
    step = plan_next(state, local(thanksgiving, 7, 0, NEW_YORK))
    assert step.at == local(thanksgiving + timedelta(days=1), 9, 0, NEW_YORK)
    assert step.deferrals == (Deferral("holiday", thanksgiving),)


def test_stated_window_not_before_ten() -> None:
    state = follow_up_state(ContactPolicy(), SHANGHAI, contact_after=time(10))
    step = plan_next(state, local(FOLLOW_UP_DAY, 8))
    assert step.at == local(FOLLOW_UP_DAY, 10)
    assert step.not_after == local(FOLLOW_UP_DAY, 20)


def test_stated_window_not_after_noon_moves_a_late_morning_to_tomorrow() -> None:
    state = follow_up_state(ContactPolicy(), SHANGHAI, contact_after=time(10), contact_before=time(12))
    step = plan_next(state, local(FOLLOW_UP_DAY, 13))
    assert step.at == local(FOLLOW_UP_DAY + timedelta(days=1), 10)
    assert step.not_after == local(FOLLOW_UP_DAY + timedelta(days=1), 12)
    assert step.deferrals == (Deferral("quiet_hours", FOLLOW_UP_DAY),), "today's closed window is named"
    legacy = plan_next(state, local(FOLLOW_UP_DAY, 13), same_day=False)
    assert legacy.at == step.at and legacy.deferrals == (), "runs recorded before 1.1 named no such day"


def test_stated_window_never_widens_the_preferred_one() -> None:
    state = follow_up_state(ContactPolicy(), SHANGHAI, contact_after=time(7), contact_before=time(23))
    step = plan_next(state, local(FOLLOW_UP_DAY, 8))
    assert step.at == local(FOLLOW_UP_DAY, 9)
    assert step.not_after == local(FOLLOW_UP_DAY, 20)


def test_stated_window_outside_the_preferred_one_falls_back_to_it() -> None:
    state = follow_up_state(ContactPolicy(), SHANGHAI, contact_after=time(21), contact_before=time(22))
    step = plan_next(state, local(FOLLOW_UP_DAY, 8))
    assert step.at == local(FOLLOW_UP_DAY, 9)
    assert step.not_after == local(FOLLOW_UP_DAY, 20)


def test_weekly_cap_defers_until_the_rolling_week_has_room() -> None:
    today = FOLLOW_UP_DAY
    state = make_state(
        policy=ContactPolicy(follow_up_interval_days=1),
        done_touches=OVERDUE_DONE,
        last_touch_date=today - timedelta(days=1),
        sms_days=[today - timedelta(days=5), today - timedelta(days=3), today - timedelta(days=1)],
    )
    step = plan_next(state, local(today, 10))
    assert step.kind is StepKind.SMS
    assert step.at == local(today + timedelta(days=2), 9)
    assert step.deferrals == (
        Deferral("weekly_cap", today),
        Deferral("weekly_cap", today + timedelta(days=1)),
    )


def test_weekly_cap_does_not_hold_an_escalation_call() -> None:
    today = FOLLOW_UP_DAY
    state = make_state(
        policy=ContactPolicy(follow_up_interval_days=1),
        done_touches=OVERDUE_DONE,
        last_touch_date=today - timedelta(days=1),
        sms_days=[today - timedelta(days=5), today - timedelta(days=3), today - timedelta(days=1)],
        unanswered_sms=3,
    )
    step = plan_next(state, local(today, 10))
    assert step.kind is StepKind.CALL
    assert step.at == local(today, 10)


# --- property: every SMS step obeys regime, preferred and stated windows, days and caps --------

ZONES = [SHANGHAI, NEW_YORK, "America/Los_Angeles", "Europe/London", "Australia/Sydney"]


def clock(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


def minutes(value: time) -> int:
    return value.hour * 60 + value.minute


@st.composite
def regime_scenarios(draw: st.DrawFn) -> tuple[AccountState, datetime]:
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

    regime = draw(st.sampled_from(sorted(REGIMES)))
    legal = REGIMES[regime]
    start = draw(st.integers(minutes(legal.legal_start), minutes(legal.legal_end) - 15))
    end = draw(st.integers(start + 15, minutes(legal.legal_end)))
    policy = ContactPolicy(
        regime=regime,
        window_start=clock(start),
        window_end=clock(end),
        holiday_calendar=draw(st.sampled_from([legal.holiday_calendar, "cn", "us", None])),
        blocked_dates=draw(st.lists(near(-2, 20), max_size=6)),
        max_sms_per_day=draw(st.integers(1, 2)),
        max_sms_per_7_days=draw(st.integers(1, 5)),
        follow_up_interval_days=draw(st.integers(1, 7)),
        pre_due_days=draw(st.lists(st.integers(0, 10), max_size=3)),
        send_spread_minutes=draw(st.sampled_from([0, 30, 180, 24 * 60])),
    )
    stated = st.none() | st.integers(6 * 60, 23 * 60).map(clock)
    birthday = draw(st.none() | near(-3, 30).map(lambda d: d.replace(year=1990) if d.day != 29 else None))
    state = make_state(
        due=draw(near(-60, 60)),
        timezone=zone,
        started_on=draw(near(-90, 0)),
        birthday=birthday,
        policy=policy,
        done_touches=draw(st.lists(st.sampled_from(OVERDUE_DONE), unique=True)),
        last_touch_date=draw(st.none() | near(-60, 0)),
        # The workflow keeps the latest 14 send days, oldest first.
        sms_days=sorted(draw(st.lists(near(-13, 0), max_size=14))),
        unanswered_sms=draw(st.integers(0, 4)),
        promise_date=draw(st.none() | near(-5, 20)),
        opted_out=draw(st.booleans()),
        contact_after=draw(stated),
        contact_before=draw(stated),
    )
    return state, now


def owed_keys(state: AccountState) -> list[str]:
    """The cadence's touches still owed, in the order the policy considers them."""
    policy, due, done = state.policy, state.account.due_date, set(state.done_touches)
    keys = [
        f"D-{n}"
        for n in sorted(set(policy.pre_due_days), reverse=True)
        if f"D-{n}" not in done and due - timedelta(days=n) >= state.started_on
    ]
    first_overdue = f"D+{policy.first_overdue_day}"
    return [*keys, first_overdue if first_overdue not in done else "follow_up"]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regime_scenarios())
def test_sms_steps_obey_every_window_day_and_cap(scenario: tuple[AccountState, datetime]) -> None:
    state, now = scenario
    policy = state.policy
    # Spread on: the herd's offsets must never push a reminder out of its window.
    step = plan_next(state, now, spread=True)
    assert step.kind in (StepKind.SMS, StepKind.CALL, StepKind.SPECIALIST)
    assert step.at is not None and step.at >= now
    assert {d.reason for d in step.deferrals} <= DEFERRAL_REASONS

    # Nothing silently dropped: every owed touch before the one planned is superseded, with a reason.
    owed = owed_keys(state)
    planned = owed.index(step.touch_key or "") if step.kind is StepKind.SMS else len(owed) - 1
    superseded = dict(step.superseded)
    assert len(superseded) == len(step.superseded)
    assert set(superseded) == set(owed[:planned])
    assert all(reason for reason in superseded.values())

    if step.kind is not StepKind.SMS:
        return
    assert not state.opted_out
    assert step.not_after is not None and step.at < step.not_after
    moment = step.at.astimezone(ZoneInfo(state.account.timezone))
    day, at = moment.date(), moment.time()
    legal = REGIMES[policy.regime]
    assert legal.legal_start <= at < legal.legal_end
    assert policy.window_start <= at < policy.window_end
    after = max(policy.window_start, state.contact_after or policy.window_start)
    before = min(policy.window_end, state.contact_before or policy.window_end)
    if after < before:
        assert after <= at < before
    assert day not in policy.blocked_dates
    if policy.holiday_calendar:
        assert not load_calendar(policy.holiday_calendar).is_holiday(day)
    birthday = state.account.birthday
    assert birthday is None or (birthday.month, birthday.day) != (day.month, day.day)
    sent = [*state.sms_days, day]
    assert sent.count(day) <= policy.max_sms_per_day
    for first in (day - timedelta(days=back) for back in range(7)):
        in_week = [d for d in sent if first <= d <= first + timedelta(days=6)]
        assert len(in_week) <= policy.max_sms_per_7_days
    if state.promise_date is not None:
        assert day > state.promise_date
