"""Instalment plans and the other self-service choices as the pure domain sees them: the schedule, the
limits a choice is refused by (naming the field), what each choice does, the reminder the day before each
instalment, payments credited in order, and a missed instalment breaking the plan."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kindly.domain.actions import plan_broken
from kindly.domain.contract import SignalName, Stage, TemplateName, TimelineKind
from kindly.domain.effect_types import CancelReason, Effect
from kindly.domain.effects import apply_signal
from kindly.domain.plans import InstalmentPlan, SelfServiceChoice, credited, plan_schedule
from kindly.domain.policy.model import ContactPolicy
from kindly.domain.policy.schedule import StepKind, plan_next
from kindly.domain.refusals import RefusalKind, refusal
from kindly.domain.self_service import self_service_offer
from kindly.domain.state import AccountState
from tests.test_schedule import OVERDUE_DONE, local, make_state

TODAY = date(2026, 12, 1)  # no cn holiday in December
NOW = local(TODAY, 10)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def overdue(**fields: Any) -> AccountState:
    return make_state(done_touches=OVERDUE_DONE, last_touch_date=TODAY - timedelta(days=2), **fields)


def choose(state: AccountState, **choice: Any) -> Effect:
    return apply_signal(state, SignalName.SELF_SERVICE, choice, NOW)


def on_plan(count: int = 3, first: date = TODAY + timedelta(days=5), **fields: Any) -> AccountState:
    effect = choose(overdue(**fields), choice="plan", instalments=count, date=first.isoformat())
    assert effect.state.plan is not None, effect.entries
    return effect.state


def reminded_of_the_first(state: AccountState) -> AccountState:
    return state.model_copy(update={"done_touches": [*OVERDUE_DONE, "plan-2026-12-01-1-due"]})


def test_a_plan_chosen_after_a_broken_one_is_reminded_afresh() -> None:
    broken = plan_broken(reminded_of_the_first(on_plan())).state
    later = local(TODAY + timedelta(days=20), 10)
    again = apply_signal(
        broken, SignalName.SELF_SERVICE, {"choice": "plan", "instalments": 3, "date": "2026-12-25"}, later
    ).state
    step = plan_next(again, later)
    assert (step.template, step.touch_key) == (TemplateName.INSTALMENT_DUE, "plan-2026-12-21-1-due")


def test_the_schedule_is_equal_to_the_cent_and_the_last_takes_the_rounding() -> None:
    schedule = plan_schedule(Decimal("1000.00"), 3, TODAY, 30)
    assert [each.amount for each in schedule] == [Decimal("333.33"), Decimal("333.33"), Decimal("333.34")]
    assert [each.due for each in schedule] == [TODAY, TODAY + timedelta(days=30), TODAY + timedelta(days=60)]
    assert sum(each.amount for each in schedule) == Decimal("1000.00")


def test_payments_are_credited_in_order_and_a_plan_paid_to_the_end_is_completed() -> None:
    plan = InstalmentPlan(instalments=plan_schedule(Decimal("300.00"), 3, TODAY, 30), chosen_on=TODAY)
    part = credited(plan, Decimal("150.00"))
    assert [each.paid for each in part.instalments] == [Decimal("100.00"), Decimal("50.00"), Decimal("0.00")]
    found = part.next_unpaid()
    assert found is not None and found[0] == 2 and found[1].left == Decimal("50.00")
    assert credited(part, Decimal("150.00")).status == "completed"


def test_a_plan_replaces_the_cadence_and_ends_the_phone_stage() -> None:
    state = overdue(escalation=Stage.PHONE, phone_attempt=1, unanswered_sms=3)
    effect = choose(
        state, choice="plan", instalments=3, date=(TODAY + timedelta(days=5)).isoformat(), touchpoint=4
    )
    plan = effect.state.plan
    assert plan is not None and plan.status == "active" and len(plan.instalments) == 3
    assert (effect.state.escalation, effect.state.unanswered_sms) == (None, 0)
    assert effect.stale is CancelReason.PLAN_CHOSEN
    [entry] = effect.entries
    assert entry.kind is TimelineKind.SELF_SERVICE
    assert entry.detail == (
        "chose an instalment plan: 3 instalments of 400.00 CNY from 2026-12-06 to 2027-02-04"
        " (from the link of touchpoint 4)"
    )


@pytest.mark.parametrize(
    ("choice", "field", "kind"),
    [
        ({"choice": "plan", "instalments": 4, "date": "2026-12-05"}, "instalments", RefusalKind.INVALID),
        ({"choice": "plan", "instalments": 3}, "date", RefusalKind.INVALID),
        ({"choice": "plan", "instalments": 3, "date": "2026-11-30"}, "date", RefusalKind.INVALID),
        ({"choice": "plan", "instalments": 3, "date": "2026-12-16"}, "date", RefusalKind.INVALID),
        ({"choice": "promise"}, "date", RefusalKind.INVALID),
        ({"choice": "promise", "date": "2026-11-30"}, "date", RefusalKind.INVALID),
    ],
    ids=["count", "no-date", "past", "too-late", "promise-no-date", "promise-past"],
)
def test_a_choice_outside_the_policys_limits_is_refused_naming_the_field(
    choice: dict[str, Any], field: str, kind: RefusalKind
) -> None:
    why = refusal(overdue(), SelfServiceChoice.model_validate(choice), NOW)
    assert why is not None and (why.kind, why.field) == (kind, field)


def test_instalments_below_the_minimum_are_refused() -> None:
    state = overdue(policy=ContactPolicy(plan_min_instalment=Decimal("500")))
    why = refusal(state, SelfServiceChoice(choice="plan", instalments=3, date=TODAY), NOW)
    assert why is not None and why.field == "instalments" and "less than 500" in why.message
    assert [option.instalments for option in self_service_offer(state, NOW).plan_options] == []


def test_a_second_plan_and_a_plan_with_the_specialists_are_conflicts() -> None:
    running = on_plan()
    why = refusal(running, SelfServiceChoice(choice="plan", instalments=3, date=TODAY), NOW)
    assert why is not None and why.kind is RefusalKind.CONFLICT
    held = overdue(escalation=Stage.SPECIALIST)
    why = refusal(held, SelfServiceChoice(choice="plan", instalments=3, date=TODAY), NOW)
    assert why is not None and why.kind is RefusalKind.CONFLICT


def test_the_offer_shows_what_the_validator_allows() -> None:
    offer = self_service_offer(overdue(), NOW)
    assert [(option.instalments, option.amount) for option in offer.plan_options] == [
        (3, Decimal("400.00")),
        (6, Decimal("200.00")),
    ]
    assert offer.plan_first_latest == TODAY + timedelta(days=14) and offer.reference_masked == "****CC-1"
    assert offer.promise_latest == TODAY + timedelta(days=366) and not offer.ended


def test_the_reminder_goes_the_day_before_each_instalment() -> None:
    first = TODAY + timedelta(days=5)
    state = on_plan(first=first)
    step = plan_next(state, NOW)
    assert (step.kind, step.template, step.touch_key) == (
        StepKind.SMS,
        TemplateName.INSTALMENT_DUE,
        "plan-2026-12-01-1-due",
    )
    assert step.at is not None and step.at.astimezone(SHANGHAI).date() == first - timedelta(days=1)
    assert step.at >= local(first - timedelta(days=1), 9), "inside the window"


def test_a_paid_instalment_moves_the_reminder_to_the_next() -> None:
    state = on_plan(first=TODAY + timedelta(days=5))
    paid = apply_signal(state, SignalName.REPAYMENT, {"amount": "400.00", "reference": "P-1"}, NOW).state
    assert paid.plan is not None and paid.plan.instalments[0].left == 0 and paid.outcome is None
    step = plan_next(paid, NOW)
    assert step.touch_key == "plan-2026-12-01-2-due" and step.at is not None
    assert step.at.astimezone(SHANGHAI).date() == TODAY + timedelta(days=5 + 30 - 1), "the day before the 2nd"


def test_a_plan_paid_to_the_end_is_the_account_repaid() -> None:
    state = on_plan()
    effect = apply_signal(state, SignalName.REPAYMENT, {"amount": "1200.00", "reference": "P-ALL"}, NOW)
    assert effect.state.outcome is not None and effect.state.plan is not None
    assert effect.state.plan.status == "completed"


def test_an_instalment_unpaid_after_its_grace_breaks_the_plan_then_the_firmer_message_goes() -> None:
    first = TODAY + timedelta(days=5)
    state = reminded_of_the_first(on_plan(first=first))
    step = plan_next(state, NOW)
    breaks_on = first + timedelta(days=state.policy.plan_grace_days + 1)
    assert step.kind is StepKind.PLAN_BROKEN and step.at == local(breaks_on, 0)
    effect = plan_broken(state)
    assert effect.state.plan is not None and effect.state.plan.status == "broken"
    assert effect.state.plan_break_owed
    assert effect.entries[0].kind is TimelineKind.PLAN_BROKEN
    assert "instalment 1 of 3 (400.00 due 2026-12-06) unpaid after its grace" in effect.entries[0].detail
    after = plan_next(effect.state, local(breaks_on, 0))
    assert (after.kind, after.template) == (StepKind.SMS, TemplateName.PLAN_BROKEN)
    assert after.at is not None and after.at.date() <= breaks_on + timedelta(days=1)


def test_a_partly_paid_instalment_still_breaks_the_plan() -> None:
    first = TODAY + timedelta(days=5)
    state = reminded_of_the_first(on_plan(first=first))
    part = apply_signal(state, SignalName.REPAYMENT, {"amount": "100.00", "reference": "P-1"}, NOW).state
    assert part.plan is not None and part.plan.instalments[0].left == Decimal("300.00")
    assert plan_next(part, NOW).kind is StepKind.PLAN_BROKEN


def test_an_opted_out_customer_on_a_plan_gets_no_reminder_but_the_plan_still_breaks() -> None:
    state = on_plan(opted_out=True)
    step = plan_next(state, NOW)
    assert step.kind is StepKind.PLAN_BROKEN
    assert not plan_broken(state).state.plan_break_owed, "no firmer SMS to a number that opted out"


@pytest.mark.parametrize(
    ("choice", "kinds", "stale"),
    [
        ("pay_now", [TimelineKind.SELF_SERVICE], None),
        ("hardship", [TimelineKind.SELF_SERVICE, TimelineKind.HANDED_TO_PERSON], CancelReason.HARDSHIP),
        ("dispute", [TimelineKind.SELF_SERVICE, TimelineKind.HANDED_TO_PERSON], CancelReason.DISPUTE),
        ("opt_out", [TimelineKind.SELF_SERVICE, TimelineKind.OPTED_OUT], CancelReason.OPTED_OUT),
    ],
)
def test_each_choice_is_recorded_as_itself_and_as_what_it_does(
    choice: str, kinds: list[TimelineKind], stale: CancelReason | None
) -> None:
    effect = choose(overdue(), choice=choice)
    assert [entry.kind for entry in effect.entries] == kinds and effect.stale is stale
    if choice in ("hardship", "dispute"):
        assert effect.state.specialist_reason == f"customer reported {choice}: needs a person"
    if choice == "opt_out":
        assert effect.state.opted_out and effect.store_opt_out


def test_a_promise_on_the_page_holds_contact_like_any_promise() -> None:
    promised = TODAY + timedelta(days=3)
    effect = choose(overdue(), choice="promise", date=promised.isoformat())
    assert [entry.kind for entry in effect.entries] == [TimelineKind.SELF_SERVICE, TimelineKind.PROMISE]
    assert effect.state.promise_date == promised and effect.stale is CancelReason.PROMISE_TO_PAY
