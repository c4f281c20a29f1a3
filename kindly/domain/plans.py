"""Instalment plans (分期还款) a customer chooses on the self-service page, and the choices that page offers.

A plan splits what is due into equal instalments at the policy's interval, the first on a date the customer
picks within the policy's limit; the last instalment takes the rounding. The plan is part of the account's
state: payments are credited against its instalments in order, a reminder goes the day before each one, and
an instalment still unpaid after the policy's grace breaks the plan (the account returns to the overdue
cadence with a firmer message). A plan paid to the end is the account repaid.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CENT = Decimal("0.01")


class SelfServiceChoiceKind(StrEnum):
    PAY_NOW = "pay_now"
    """The customer went on to the lender's payment page."""
    PROMISE = "promise"
    PLAN = "plan"
    HARDSHIP = "hardship"
    """"I can't pay right now": a person of the specialist team takes the account."""
    DISPUTE = "dispute"
    """"This is not my loan": a person of the specialist team takes the account."""
    OPT_OUT = "opt_out"


class SelfServiceChoice(BaseModel):
    """What the customer chose on the self-service page (the ``self_service`` update). ``date`` is the
    promised date (``promise``) or the first instalment's (``plan``); ``instalments`` the plan's count."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choice: SelfServiceChoiceKind
    date: dt.date | None = None
    instalments: int | None = Field(default=None, ge=1, le=60)
    touchpoint: int | None = Field(default=None, ge=1)
    """The reminder whose link the customer followed, for the outcome analytics."""


class Instalment(BaseModel):
    model_config = ConfigDict(frozen=True)

    due: dt.date
    amount: Decimal
    paid: Decimal = Decimal("0.00")

    @property
    def left(self) -> Decimal:
        return max(self.amount - self.paid, Decimal("0.00"))


class InstalmentPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    instalments: tuple[Instalment, ...]
    chosen_on: dt.date
    status: Literal["active", "broken", "completed"] = "active"

    def next_unpaid(self) -> tuple[int, Instalment] | None:
        """The first instalment with something left to pay, and its number (1-based)."""
        return next(
            ((number, each) for number, each in enumerate(self.instalments, 1) if each.left > 0), None
        )


def plan_schedule(
    total: Decimal, count: int, first_due: dt.date, interval_days: int
) -> tuple[Instalment, ...]:
    """``count`` instalments of ``total``, equal to the cent and the last one taking the rounding, due every
    ``interval_days`` from ``first_due``."""
    each = (total / count).quantize(CENT, rounding=ROUND_DOWN)
    amounts = [each] * (count - 1) + [total - each * (count - 1)]
    return tuple(
        Instalment(due=first_due + dt.timedelta(days=interval_days * index), amount=amount)
        for index, amount in enumerate(amounts)
    )


def credited(plan: InstalmentPlan, amount: Decimal) -> InstalmentPlan:
    """The plan after a payment of ``amount``, applied to its instalments in order; a plan paid to the end
    is ``completed``."""
    left, paid = amount, []
    for instalment in plan.instalments:
        applied = min(left, instalment.left)
        left -= applied
        paid.append(instalment.model_copy(update={"paid": instalment.paid + applied}))
    complete = all(instalment.left == 0 for instalment in paid)
    status = "completed" if complete and plan.status == "active" else plan.status
    return plan.model_copy(update={"instalments": tuple(paid), "status": status})


def describe(plan: InstalmentPlan, currency: str) -> str:
    """The plan in a line for the timeline and the audit log: counts, amounts and dates only."""
    first, last = plan.instalments[0], plan.instalments[-1]
    return (
        f"{len(plan.instalments)} instalments of {first.amount} {currency} "
        f"from {first.due} to {last.due}"
        + ("" if last.amount == first.amount else f" (the last {last.amount})")
    )


class PlanOption(BaseModel):
    model_config = ConfigDict(frozen=True)

    instalments: int
    amount: Decimal
    """Each instalment but the last, which takes the rounding."""


class SelfServiceOffer(BaseModel):
    """What the self-service page may offer an account now (the ``self_service`` query): the masked
    reference, what is due, and the limits of a promise and of a plan, in the customer's local dates.
    Never a name or a number."""

    model_config = ConfigDict(frozen=True)

    reference_masked: str
    locale: str
    """The account's language: the one its reminders, and so its link, came in."""
    amount_due: Decimal
    currency: str
    due_date: dt.date
    today: dt.date
    ended: bool
    opted_out: bool
    promise_date: dt.date | None
    promise_latest: dt.date
    plan: InstalmentPlan | None
    plan_options: tuple[PlanOption, ...]
    """Empty when no plan may be chosen now (one runs, the specialists hold the account, too little is
    due for the policy's smallest instalment)."""
    plan_first_latest: dt.date
    plan_interval_days: int
