"""What an account on an instalment plan does next (``kindly.domain.plans``): a reminder the day before its
next instalment, under the same windows, blocked days and caps as any reminder, and, once an instalment is
still unpaid after the policy's grace, the plan's break at the start of the next local day.

A plan replaces the overdue cadence and its escalation while it runs: the customer chose how to pay, and
is reminded of that, not chased. A broken plan hands the account back to the cadence, which sends the
firmer ``plan_broken`` message first (``schedule._next_cadence_step``).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from kindly.domain.contract import TemplateName
from kindly.domain.plans import InstalmentPlan
from kindly.domain.policy.moments import Step, StepKind, first_allowed_moment
from kindly.domain.state import AccountState


def instalment_touch_key(plan: InstalmentPlan, number: int) -> str:
    """The reminder of instalment ``number`` of ``plan``: the plan's day is in it, so that a plan chosen
    after a broken one is reminded afresh."""
    return f"plan-{plan.chosen_on.isoformat()}-{number}-due"


def next_plan_step(state: AccountState, now: datetime, *, spread: bool, same_day: bool) -> Step | None:
    """The plan's next step, or None when no plan runs (none chosen, broken, or paid to the end)."""
    plan = state.plan
    if plan is None or plan.status != "active":
        return None
    found = plan.next_unpaid()
    if found is None:
        return None
    number, instalment = found
    zone = ZoneInfo(state.account.timezone)
    breaks_on = instalment.due + timedelta(days=state.policy.plan_grace_days + 1)
    breaks_at = datetime.combine(breaks_on, time(0), zone)
    no_sms = state.opted_out or state.sms_undeliverable
    key = instalment_touch_key(plan, number)
    if no_sms or key in state.done_touches or breaks_at <= now:
        return Step(StepKind.PLAN_BROKEN, at=max(breaks_at, now), touch_key=f"plan-{number}-broken")
    # The day before the instalment; a plan chosen later than that is reminded at once (on its due day
    # at the latest: a reminder after it would be a chase, which the break's message is).
    day = max(instalment.due - timedelta(days=1), now.astimezone(zone).date())
    at, end, deferrals = first_allowed_moment(state, day, now, spread=spread, same_day=same_day)
    if at is not None and at.astimezone(zone).date() > instalment.due:
        return Step(StepKind.PLAN_BROKEN, at=max(breaks_at, now), touch_key=f"plan-{number}-broken")
    return Step(
        StepKind.SMS,
        at=at,
        template=TemplateName.INSTALMENT_DUE,
        touch_key=key,
        nominal_day=day,
        not_after=end,
        deferrals=deferrals,
    )
