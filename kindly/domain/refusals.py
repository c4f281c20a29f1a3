"""Whether an account can take an action now, and if not, why: one answer for the update validators
(which refuse before anything is written to the history) and for signals (which record a refusal).
The kinds of refusal, and what callers answer for each, are in ``kindly.domain.refusal_types``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from kindly.domain.complaint_effects import complaint_refusal, resume_refusal
from kindly.domain.complaints import AcknowledgeComplaint, OpenComplaint, ResolveComplaint
from kindly.domain.contract import (
    SIGNAL_MODELS,
    CallOutcome,
    CallOutcomeKind,
    Pause,
    PromiseToPay,
    Repayment,
    Resume,
    Settle,
    SignalName,
    Stage,
    UpdateContact,
)
from kindly.domain.plans import SelfServiceChoice, SelfServiceChoiceKind
from kindly.domain.policy.schedule import local_date, local_iso
from kindly.domain.refusal_types import Refusal as Refusal
from kindly.domain.refusal_types import RefusalKind as RefusalKind
from kindly.domain.refusal_types import invalid
from kindly.domain.state import AccountState
from kindly.domain.validation import describe_validation_error

MAX_PAUSE = timedelta(days=36525)
"""A pause's ``until`` lies within a hundred years of now: one at the edge of the calendar cannot even be
shown in the customer's zone, nor waited for by a timer (a pause without ``until`` lasts until resumed)."""


MAX_CALL_BACK = timedelta(days=30)
"""How far ahead a customer's call-back may be booked: a later one is a promise or a pause, not a call."""


def parsed(name: SignalName, payload: Any) -> BaseModel | Refusal:
    """The action's message, or an ``invalid`` refusal naming the first bad field."""
    try:
        return SIGNAL_MODELS[name].model_validate({} if payload is None else payload)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        return Refusal(RefusalKind.INVALID, describe_validation_error(err), None if field is None else field)


def refusal(
    state: AccountState, message: BaseModel, now: datetime, *, strict: bool = True, rules_1_2: bool = True
) -> Refusal | None:
    """Why ``state`` cannot take ``message`` at ``now``, or None when it can.

    ``strict`` adds the checks that came after 1.0 (a settlement above the amount due, a pause ending
    in the past); runs recorded before them pass False, so that they replay as they ran. ``rules_1_2``
    admits what 1.2 added: call-backs, and a resume that hands a specialist's account back to the
    automated cadence; runs started before it refuse both as conflicts.
    """
    if state.outcome is not None:
        return Refusal(RefusalKind.CONFLICT, f"the account has ended ({state.outcome})")
    today = local_date(state, now)
    if isinstance(message, Pause) and message.until is not None:
        until = message.until
        if not now - MAX_PAUSE < until < now + MAX_PAUSE:
            return invalid("until", f"{until.isoformat()} is more than a hundred years from now")
        if strict and until <= now:
            shown = local_iso(state.account.timezone, now)
            return invalid("until", f"{until.isoformat()} is not in the future (it is now {shown})")
    handed_back = rules_1_2 and state.escalation == Stage.SPECIALIST
    if isinstance(message, Resume) and (held := resume_refusal(state)) is not None:
        return held
    if isinstance(message, Resume) and not (state.paused or state.complaint_hold) and not handed_back:
        return Refusal(RefusalKind.CONFLICT, "account is not paused")
    if isinstance(message, Settle) and strict and message.amount > state.amount_due:
        due = f"{state.amount_due} {state.account.currency}"
        return invalid("amount", f"{message.amount} is more than the amount due ({due})")
    if isinstance(message, Repayment) and message.reference in state.credited_references:
        return Refusal(RefusalKind.CONFLICT, f"payment {message.reference} was already credited")
    if isinstance(message, PromiseToPay):
        return promise_refusal(state, message.date, today, "date")
    if isinstance(message, CallOutcome) and message.outcome is CallOutcomeKind.PROMISE_TO_PAY:
        if message.promise_date is None:
            return invalid("promise_date", "required when outcome is promise_to_pay")
        return promise_refusal(state, message.promise_date, today, "promise_date")
    if isinstance(message, CallOutcome) and message.outcome is CallOutcomeKind.CALL_BACK:
        return call_back_refusal(state, message.call_back_at, now, rules_1_2=rules_1_2)
    if isinstance(message, SelfServiceChoice):
        return self_service_refusal(state, message, today)
    if isinstance(message, OpenComplaint | AcknowledgeComplaint | ResolveComplaint):
        return complaint_refusal(state, message, now)
    if isinstance(message, UpdateContact) and not message.model_dump(exclude_none=True):
        return Refusal(RefusalKind.INVALID, "give at least one of phone, timezone, locale")
    return None


def call_back_refusal(
    state: AccountState, at: datetime | None, now: datetime, *, rules_1_2: bool
) -> Refusal | None:
    """A call-back is for a later moment within ``MAX_CALL_BACK``, on an account the phone team works."""
    if not rules_1_2:
        return Refusal(
            RefusalKind.CONFLICT, "this account's run predates call-backs: record the call as reached"
        )
    if state.escalation == Stage.SPECIALIST:
        return Refusal(RefusalKind.CONFLICT, "the account is with the specialist team")
    if at is None:
        return invalid("call_back_at", "required when outcome is call_back")
    if at <= now:
        shown = local_iso(state.account.timezone, now)
        return invalid("call_back_at", f"{at.isoformat()} is not in the future (it is now {shown})")
    if at - now > MAX_CALL_BACK:
        return invalid("call_back_at", f"{at.isoformat()} is more than {MAX_CALL_BACK.days} days ahead")
    return None


def self_service_refusal(state: AccountState, choice: SelfServiceChoice, today: date) -> Refusal | None:
    """A promise within the policy's limit; a plan the policy offers (``plan_refusal``); the other choices
    are always taken."""
    if choice.choice is SelfServiceChoiceKind.PROMISE:
        if choice.date is None:
            return invalid("date", "required for a promise")
        return promise_refusal(state, choice.date, today, "date")
    if choice.choice is SelfServiceChoiceKind.PLAN:
        return plan_refusal(state, choice.instalments, choice.date, today)
    return None


def plan_refusal(state: AccountState, count: int | None, first: date | None, today: date) -> Refusal | None:
    """An instalment plan within the policy's limits: a count it offers, each instalment at least its
    minimum, the first within its days from today; not while a plan runs or the specialists hold the
    account."""
    policy = state.policy
    if state.plan is not None and state.plan.status == "active":
        return Refusal(RefusalKind.CONFLICT, "an instalment plan is already running")
    if state.escalation == Stage.SPECIALIST:
        return Refusal(RefusalKind.CONFLICT, "the account is with the specialist team")
    allowed = ", ".join(str(each) for each in policy.plan_instalment_counts)
    if count is None or count not in policy.plan_instalment_counts:
        return invalid("instalments", f"one of {allowed}")
    if state.amount_due / count < policy.plan_min_instalment:
        least = f"{policy.plan_min_instalment} {state.account.currency}"
        return invalid("instalments", f"each of {count} instalments would be less than {least}")
    if first is None:
        return invalid("date", "required for a plan")
    if first < today:
        return invalid("date", f"{first} is in the past (today is {today})")
    latest = today + timedelta(days=policy.plan_first_within_days)
    if first > latest:
        return invalid("date", f"{first} is later than {latest}, the latest first instalment")
    return None


def promise_refusal(state: AccountState, promised: date, today: date, field: str) -> Refusal | None:
    """A promise is for today or a later day within the policy's ``max_promise_days``."""
    if promised < today:
        return invalid(field, f"{promised} is in the past (today is {today})")
    limit = state.policy.max_promise_days
    if (promised - today).days > limit:
        return invalid(field, f"{promised} is more than {limit} days ahead (today is {today})")
    return None
