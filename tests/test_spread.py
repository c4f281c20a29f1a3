"""The window-open herd: each account's reminder goes at its own stable moment of the window."""

from __future__ import annotations

from collections import Counter
from datetime import date, time, timedelta
from typing import Any

from kindly.domain.contract import TemplateName
from kindly.domain.policy.limits import spread_offset
from kindly.domain.policy.model import ContactPolicy
from kindly.domain.policy.schedule import StepKind, plan_next
from kindly.domain.state import AccountState
from tests.test_schedule import DUE, OVERDUE_DONE, local, make_state

WINDOW = timedelta(hours=11)  # the standard policy's 09:00-20:00


def test_offsets_are_stable_spread_and_inside_the_bound() -> None:
    offsets = [spread_offset(f"ACC-{n}", WINDOW, 180) for n in range(2000)]
    assert offsets == [spread_offset(f"ACC-{n}", WINDOW, 180) for n in range(2000)], "deterministic"
    assert all(timedelta(0) <= offset < timedelta(minutes=180) for offset in offsets)
    per_quarter_hour = Counter(int(offset.total_seconds() // 900) for offset in offsets)
    assert len(per_quarter_hour) == 12, "every quarter hour of the spread gets some accounts"
    assert max(per_quarter_hour.values()) < 2000 / 12 * 1.5, "no quarter hour takes the herd"


def test_the_spread_never_exceeds_half_the_window() -> None:
    short = timedelta(hours=1)
    assert all(spread_offset(f"ACC-{n}", short, 180) < short / 2 for n in range(500))
    assert spread_offset("ACC-1", WINDOW, 0) == timedelta(0)


def follow_up(account_policy: ContactPolicy, **fields: Any) -> tuple[AccountState, date]:
    day = DUE + timedelta(days=8)
    state = make_state(
        policy=account_policy,
        done_touches=OVERDUE_DONE,
        last_touch_date=DUE + timedelta(days=1),
        **fields,
    )
    return state, day


def test_a_reminder_waits_for_the_accounts_moment_and_keeps_it_every_day() -> None:
    state, day = follow_up(ContactPolicy())
    step = plan_next(state, local(day, 7), spread=True)
    offset = spread_offset("ACC-1", WINDOW, 180)
    assert step.kind is StepKind.SMS and offset > timedelta(0)
    assert step.at == local(day, 9) + offset
    unspread = plan_next(state, local(day, 7))
    assert unspread.at == local(day, 9), "runs from before the patch keep the window's opening"


def test_an_account_past_its_moment_is_contacted_now_not_tomorrow() -> None:
    state, day = follow_up(ContactPolicy())
    now = local(day, 13)
    assert plan_next(state, now, spread=True).at == now


def test_the_spread_stays_inside_the_customers_own_window() -> None:
    state, day = follow_up(ContactPolicy(), contact_after=time(18), contact_before=time(19))
    step = plan_next(state, local(day, 7), spread=True)
    assert step.at is not None
    assert local(day, 18) <= step.at < local(day, 18, 30)


def test_replies_the_customer_asked_for_are_not_spread() -> None:
    state, day = follow_up(ContactPolicy(), pending_service=[TemplateName.HELP])
    now = local(day, 8, 30)
    assert plan_next(state, now, spread=True).at == now


def test_after_a_gateway_outage_closed_the_window_the_reminder_waits_for_the_next_one() -> None:
    state, day = follow_up(ContactPolicy(), sms_not_before=local(DUE + timedelta(days=8), 20))
    step = plan_next(state, local(day, 19, 55))
    assert step.kind is StepKind.SMS
    assert step.at == local(day + timedelta(days=1), 9), "not again in the window that just closed"
