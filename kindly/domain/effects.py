"""What each signal does to an account: pure functions over ``AccountState``.

The workflow owns time, timers and activities; everything it *decides* when a signal arrives lives here
(and, when an activity ends, in ``kindly.domain.completions``), as functions that take the state and return an
:class:`Effect`: the new state, the timeline entries to record, and whether an action still in flight (a
reminder retrying through a gateway outage, a call task, a hand-off) may have become unwanted
(:class:`CancelReason`).
No function here raises for any payload or any order of calls: a bad signal comes back as a
``signal_rejected`` entry and an unchanged state. Unit tests call them without Temporal.

States are never changed in place: each function works on a shallow copy and replaces, rather than
appends to, the lists it changes, so the state it was given stays as it was.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from kindly.domain.complaint_effects import (
    complaint_acknowledged,
    complaint_opened,
    complaint_resolved,
    open_complaint,
)
from kindly.domain.complaints import AcknowledgeComplaint, ComplaintChannel, OpenComplaint, ResolveComplaint
from kindly.domain.contract import (
    CallOutcome,
    CallOutcomeKind,
    Close,
    CustomerReply,
    Outcome,
    Pause,
    PromiseToPay,
    RefreshPolicy,
    Repayment,
    Resume,
    Settle,
    SignalName,
    SmsUndeliverable,
    Stage,
    TemplateName,
    TimelineKind,
    UpdateContact,
)
from kindly.domain.effect_types import ActionKind as ActionKind
from kindly.domain.effect_types import CancelReason as CancelReason
from kindly.domain.effect_types import Effect as Effect
from kindly.domain.effect_types import Entry as Entry
from kindly.domain.effect_types import cancels as cancels
from kindly.domain.plans import (
    InstalmentPlan,
    SelfServiceChoice,
    SelfServiceChoiceKind,
    credited,
    plan_schedule,
)
from kindly.domain.plans import describe as describe_plan
from kindly.domain.policy.model import CALL_HISTORY_KEPT
from kindly.domain.policy.replies import ReplyIntent, classify_reply
from kindly.domain.policy.schedule import local_date, local_iso
from kindly.domain.refusals import Refusal, parsed, refusal
from kindly.domain.state import AccountState


def apply_signal(
    state: AccountState,
    name: SignalName,
    payload: Any,
    now: datetime,
    *,
    strict: bool = True,
    rules_1_2: bool = True,
    rules_1_3: bool = True,
) -> Effect:
    """The effect of signal ``name`` with ``payload`` (raw JSON, possibly garbage) at ``now``.

    A payload that does not validate, or a signal the account cannot take now
    (``kindly.domain.refusals``), leaves the state as it was and records why it was rejected. An ended
    account ignores signals. ``strict`` and ``rules_1_2`` are the refusals' (runs recorded before 1.1
    and 1.2 pass False); ``rules_1_3`` hears complaints in replies (runs recorded before 1.3 pass False).
    """
    if state.outcome is not None:
        return Effect(state)
    message = parsed(name, payload)
    if isinstance(message, Refusal):
        return _rejected(state, f"{name}: {message}")
    refused = refusal(state, message, now, strict=strict, rules_1_2=rules_1_2)
    if refused is not None:
        return _rejected(state, f"{name}: {refused}")
    return _apply(state.model_copy(), message, now, rules_1_2=rules_1_2, rules_1_3=rules_1_3)


def _rejected(state: AccountState, why: str) -> Effect:
    return Effect(state, (Entry(TimelineKind.SIGNAL_REJECTED, why),))


def _apply(
    state: AccountState, message: BaseModel, now: datetime, *, rules_1_2: bool, rules_1_3: bool
) -> Effect:
    """``state`` is the caller's own copy."""
    today = local_date(state, now)
    if isinstance(message, Repayment):
        return _credit(state, message)
    if isinstance(message, CustomerReply):
        return _on_reply(state, message, now, complaints=rules_1_3)
    if isinstance(message, OpenComplaint):
        return complaint_opened(state, message.channel, message.received_at or now, note=message.note)
    if isinstance(message, AcknowledgeComplaint):
        return complaint_acknowledged(state, message, now)
    if isinstance(message, ResolveComplaint):
        return complaint_resolved(state, message, now)
    if isinstance(message, Pause):
        state.paused, state.pause_reason, state.paused_until = True, message.reason, message.until
        until = f" until {local_iso(state.account.timezone, message.until)}" if message.until else ""
        return Effect(state, (Entry(TimelineKind.PAUSED, f"{message.reason}{until}"),), CancelReason.PAUSED)
    if isinstance(message, Resume):
        return _resume(state, rules_1_2=rules_1_2)
    if isinstance(message, Settle):
        state.amount_collected += message.amount
        state.outcome = Outcome.SETTLED
        entry = Entry(TimelineKind.SETTLED, f"settled for {message.amount} ({message.reference})")
        return Effect(state, (entry,), CancelReason.SETTLED)
    if isinstance(message, Close):
        state.outcome = Outcome.CLOSED
        return Effect(state, (Entry(TimelineKind.CLOSED, message.reason),), CancelReason.CLOSED)
    if isinstance(message, PromiseToPay):
        entry = _promise(state, message.date, via="customer")
        return Effect(state, (entry,), CancelReason.PROMISE_TO_PAY)
    if isinstance(message, CallOutcome):
        return _on_call_outcome(state, message, today)
    if isinstance(message, RefreshPolicy):
        return Effect(state, refresh=message)
    if isinstance(message, SmsUndeliverable):
        if state.sms_undeliverable:
            return Effect(state)
        state.sms_undeliverable = True
        state.pending_service = []
        entry = Entry(
            TimelineKind.SMS_UNDELIVERABLE, f"{message.reason}; no further SMS, escalation by phone"
        )
        return Effect(state, (entry,), CancelReason.SMS_UNDELIVERABLE)
    if isinstance(message, SelfServiceChoice):
        return _self_service(state, message, today)
    assert isinstance(message, UpdateContact), type(message)
    return _update_contact(state, message)


def _self_service(state: AccountState, choice: SelfServiceChoice, today: date) -> Effect:
    """What the customer chose on the self-service page; ``choice`` passed ``refusals.self_service``. The
    choice is recorded as itself (``self_service``), then as what it does (a promise, a hand-off, ...), so
    the outcome reports count it like any other."""
    link = f" (from the link of touchpoint {choice.touchpoint})" if choice.touchpoint else ""
    kind = choice.choice
    if kind is SelfServiceChoiceKind.PAY_NOW:
        return Effect(state, (Entry(TimelineKind.SELF_SERVICE, f"went on to the payment page{link}"),))
    if kind is SelfServiceChoiceKind.PROMISE:
        assert choice.date is not None
        chose = Entry(TimelineKind.SELF_SERVICE, f"promised to pay by {choice.date}{link}")
        promised = _promise(state, choice.date, via="customer, on the self-service page,")
        return Effect(state, (chose, promised), CancelReason.PROMISE_TO_PAY)
    if kind is SelfServiceChoiceKind.PLAN:
        assert choice.date is not None and choice.instalments is not None
        policy = state.policy
        schedule = plan_schedule(state.amount_due, choice.instalments, choice.date, policy.plan_interval_days)
        state.plan = InstalmentPlan(instalments=schedule, chosen_on=today)
        state.instalment_offered = True  # after a plan, the cadence offers none again
        state.promise_date, state.promise_broken, state.unanswered_sms, state.call_back_at = (
            None,
            False,
            0,
            None,
        )
        if state.escalation == Stage.PHONE:
            state.escalation, state.phone_attempt, state.phone_requested_at = None, 0, None
        plan = f"chose an instalment plan: {describe_plan(state.plan, state.account.currency)}{link}"
        return Effect(state, (Entry(TimelineKind.SELF_SERVICE, plan),), CancelReason.PLAN_CHOSEN)
    if kind is SelfServiceChoiceKind.OPT_OUT:
        chose = Entry(TimelineKind.SELF_SERVICE, f"asked for no more SMS{link}")
        return _opt_out(state, chose)
    intent = ReplyIntent.HARDSHIP if kind is SelfServiceChoiceKind.HARDSHIP else ReplyIntent.DISPUTE
    said = "cannot pay right now" if intent is ReplyIntent.HARDSHIP else "says this is not their loan"
    return _to_person(state, intent, Entry(TimelineKind.SELF_SERVICE, f"{said}{link}"))


def _resume(state: AccountState, *, rules_1_2: bool) -> Effect:
    """Contact starts again from now: a pause ends, so does the hold of a resolved complaint, and on the
    1.2 rules an account the specialists held goes back to the automated cadence."""
    state.paused, state.paused_until, state.complaint_hold = False, None, False
    if not (rules_1_2 and hand_back(state)):
        return Effect(state, (Entry(TimelineKind.RESUMED, "resumed by operator; cadence restarts from now"),))
    why = "handed back to automated contact by the specialist team; cadence restarts from now"
    return Effect(state, (Entry(TimelineKind.RESUMED, why),))


def hand_back(state: AccountState) -> bool:
    """Return an account the specialists hold to the automated cadence (``state`` is the caller's own
    copy), its count of unanswered reminders and call attempts starting afresh; False when the
    specialists did not hold it."""
    if state.escalation != Stage.SPECIALIST:
        return False
    state.escalation, state.unanswered_sms, state.phone_attempt, state.phone_requested_at = None, 0, 0, None
    return True


def _credit(state: AccountState, payment: Repayment) -> Effect:
    if state.plan is not None and state.plan.status == "active":
        state.plan = credited(state.plan, payment.amount)
    state.credited_references = [*state.credited_references, payment.reference]
    state.amount_due -= payment.amount
    state.amount_collected += payment.amount
    state.unanswered_sms = 0
    left = max(state.amount_due, Decimal(0))
    entries = [
        Entry(
            TimelineKind.REPAYMENT_RECEIVED, f"{payment.amount} received ({payment.reference}); {left} left"
        )
    ]
    if state.amount_due > 0:
        return Effect(state, tuple(entries), CancelReason.AMOUNT_CHANGED)
    state.amount_due = Decimal("0.00")
    state.outcome = Outcome.REPAID
    entries.append(Entry(TimelineKind.REPAID, "paid in full"))
    return Effect(state, tuple(entries), CancelReason.REPAID)


def _on_reply(state: AccountState, reply: CustomerReply, now: datetime, *, complaints: bool) -> Effect:
    state.unanswered_sms = 0
    intent = classify_reply(reply.text, state.policy.reply_keywords, complaints=complaints)
    # The reply's text may hold personal data: the timeline keeps only what it meant.
    received = Entry(TimelineKind.REPLY_RECEIVED, f"reply ({intent}, {len(reply.text)} chars)")
    if intent is ReplyIntent.COMPLAINT:
        if open_complaint(state) is not None:
            return Effect(state, (received,))  # heard with the complaint already open
        return complaint_opened(state, ComplaintChannel.SMS_REPLY, now, said=received)
    if intent is ReplyIntent.OPT_OUT:
        return _opt_out(state, received)
    if intent in (ReplyIntent.HARDSHIP, ReplyIntent.DISPUTE):
        return _to_person(state, intent, received)
    owed = not state.opted_out and not state.sms_undeliverable
    if intent is ReplyIntent.HELP and owed and TemplateName.HELP not in state.pending_service:
        state.pending_service = [*state.pending_service, TemplateName.HELP]
    return Effect(state, (received,))


def _opt_out(state: AccountState, asked: Entry) -> Effect:
    """The customer asked for no more SMS (``asked`` records how): only the confirmation goes, replacing
    every service reply still owed (none goes to a number the carrier reported unreachable)."""
    if state.opted_out:
        return Effect(state, (asked,))
    state.opted_out = True
    state.pending_service = [] if state.sms_undeliverable else [TemplateName.OPT_OUT_CONFIRMATION]
    opted_out = Entry(TimelineKind.OPTED_OUT, "no further SMS; escalation continues by phone")
    return Effect(state, (asked, opted_out), CancelReason.OPTED_OUT, store_opt_out=True)


def _to_person(state: AccountState, intent: ReplyIntent, said: Entry) -> Effect:
    """Hardship or a dispute (``said`` records how the customer said it): automated contact stops and a
    person takes the account, told why (never the customer's words)."""
    if state.escalation != Stage.SPECIALIST:
        state.specialist_reason = f"customer reported {intent}: needs a person"
    handed = Entry(TimelineKind.HANDED_TO_PERSON, f"{intent} reported; automated contact stops")
    reason = CancelReason.HARDSHIP if intent is ReplyIntent.HARDSHIP else CancelReason.DISPUTE
    return Effect(state, (said, handed), reason, escalated_to_person=True)


def _promise(state: AccountState, promised: date, *, via: str) -> Entry:
    """``promised`` passed ``kindly.domain.refusals.promise_refusal``."""
    state.promise_date = promised
    state.unanswered_sms = 0
    state.call_back_at = None
    if state.escalation == Stage.PHONE:
        state.escalation, state.phone_attempt, state.phone_requested_at = None, 0, None
    return Entry(TimelineKind.PROMISE, f"{via} promised to pay by {promised}; contact held")


def _on_call_outcome(state: AccountState, call: CallOutcome, today: date) -> Effect:
    entries = [Entry(TimelineKind.CALL_OUTCOME, f"{call.outcome} (attempt {state.phone_attempt})")]
    if call.outcome is CallOutcomeKind.PROMISE_TO_PAY:
        assert call.promise_date is not None
        entries.append(_promise(state, call.promise_date, via="on the phone, customer"))
    if call.outcome is not CallOutcomeKind.NO_ANSWER:
        # A connected call: the regimes' limits on conversations and calls after one count it.
        state.conversation_days = [*state.conversation_days, today][-CALL_HISTORY_KEPT:]
    state.call_back_at = None
    stale: CancelReason | None = None
    if call.outcome is CallOutcomeKind.CALL_BACK:
        assert call.call_back_at is not None
        state.call_back_at = call.call_back_at
        state.escalation, state.phone_requested_at = Stage.PHONE, None
        shown = local_iso(state.account.timezone, call.call_back_at)
        entries.append(Entry(TimelineKind.CALL_OUTCOME, f"customer asked to be called back at {shown}"))
        stale = CancelReason.REACHED
    elif call.outcome is CallOutcomeKind.REACHED:
        state.unanswered_sms = 0
        state.last_touch_date = today
        # The conversation was the overdue contact: the next one is a follow-up, an interval from today
        # (an account that cannot get SMS would otherwise be called again at once).
        first_overdue = f"D+{state.policy.first_overdue_day}"
        if first_overdue not in state.done_touches:
            state.done_touches = [*state.done_touches, first_overdue]
        if state.escalation == Stage.PHONE:
            state.escalation, state.phone_attempt, state.phone_requested_at = None, 0, None
        stale = CancelReason.REACHED
    elif call.outcome is CallOutcomeKind.NO_ANSWER:
        if state.escalation == Stage.PHONE:
            state.phone_requested_at = None
    elif call.outcome is CallOutcomeKind.PROMISE_TO_PAY:
        stale = CancelReason.PROMISE_TO_PAY
    else:
        if state.escalation != Stage.SPECIALIST:
            state.specialist_reason = f"call outcome {call.outcome}"
        stale = CancelReason.HANDED_TO_PERSON
    return Effect(state, tuple(entries), stale)


def _update_contact(state: AccountState, message: UpdateContact) -> Effect:
    changes = message.model_dump(exclude_none=True)
    new_number = "phone" in changes and changes["phone"] != state.account.phone
    state.account = state.account.model_copy(update=changes)
    state.contact_after = state.account.contact_after
    state.contact_before = state.account.contact_before
    if new_number and state.sms_undeliverable:
        state.sms_undeliverable = False  # a new number may well receive SMS
    entry = Entry(TimelineKind.CONTACT_UPDATED, "updated " + ", ".join(sorted(changes)))
    stale = CancelReason.NUMBER_CHANGED if new_number else None
    return Effect(state, (entry,), stale, phone_changed="phone" in changes)
