"""What the customer's self-service page may offer an account now: the ``self_service`` query's answer,
computed from the state with the same limits the update's validator applies (``refusals.plan_refusal``),
so that the page never offers what the account would refuse."""

from __future__ import annotations

from datetime import datetime, timedelta

from kindly.domain.masking import mask_reference
from kindly.domain.plans import CENT, PlanOption, SelfServiceOffer, plan_schedule
from kindly.domain.policy.schedule import local_date
from kindly.domain.refusals import plan_refusal
from kindly.domain.state import AccountState


def self_service_offer(state: AccountState, now: datetime) -> SelfServiceOffer:
    policy, today = state.policy, local_date(state, now)
    first_latest = today + timedelta(days=policy.plan_first_within_days)
    options = tuple(
        PlanOption(instalments=count, amount=plan_schedule(state.amount_due, count, today, 1)[0].amount)
        for count in sorted(policy.plan_instalment_counts)
        if plan_refusal(state, count, today, today) is None
    )
    return SelfServiceOffer(
        reference_masked=mask_reference(state.account.account_id),
        locale=state.account.locale,
        amount_due=state.amount_due.quantize(CENT),
        currency=state.account.currency,
        due_date=state.account.due_date,
        today=today,
        ended=state.outcome is not None,
        opted_out=state.opted_out,
        promise_date=state.promise_date,
        promise_latest=today + timedelta(days=policy.max_promise_days),
        plan=state.plan,
        plan_options=options,
        plan_first_latest=first_latest,
        plan_interval_days=policy.plan_interval_days,
    )
