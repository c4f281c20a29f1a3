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

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel

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
from kindly.domain.policy.model import CALL_HISTORY_KEPT
from kindly.domain.policy.replies import ReplyIntent, classify_reply
from kindly.domain.policy.schedule import local_date, local_iso
from kindly.domain.refusals import Refusal, parsed, refusal
from kindly.domain.state import AccountState


class CancelReason(StrEnum):
    """Why an action planned before a signal may no longer be wanted (``cancels`` says for which)."""

    PAUSED = "paused"
    OPTED_OUT = "opted_out"
    REPAID = "repaid"
    SETTLED = "settled"
    CLOSED = "closed"
    HARDSHIP = "hardship"
    DISPUTE = "dispute"
    PROMISE_TO_PAY = "promise_to_pay"
    SMS_UNDELIVERABLE = "sms_undeliverable"
    NUMBER_CHANGED = "number_changed"
    AMOUNT_CHANGED = "amount_changed"
    """A partial payment: a message stating the old amount would no longer be true."""
    REACHED = "reached"
    """A call reached the customer, which ends the phone stage."""
    HANDED_TO_PERSON = "handed_to_person"
    """A call outcome (wrong number, refused) sends the account to the specialists."""


class ActionKind(StrEnum):
    """What the workflow may have in flight while signals arrive."""

    REMINDER = "reminder"
    SERVICE_SMS = "service_sms"
    CALL_TASK = "call_task"
    SPECIALIST = "specialist"


_ENDED = frozenset({CancelReason.REPAID, CancelReason.SETTLED, CancelReason.CLOSED})
_NO_LONGER_TRUE = frozenset(
    {
        CancelReason.OPTED_OUT,
        CancelReason.SMS_UNDELIVERABLE,
        CancelReason.NUMBER_CHANGED,
        CancelReason.AMOUNT_CHANGED,
        CancelReason.PAUSED,
    }
)


def cancels(kind: ActionKind, template: TemplateName | None, reason: CancelReason) -> bool:
    """Whether ``reason`` makes an action of this kind, still in flight, unwanted.

    - A reminder: every reason. Whatever changed, the next plan decides again, with the new state.
    - A service reply (HELP): when it may no longer go (opt-out, no usable number, a pause) or would
      no longer be true (a payment changed the amount), and when the account ended. It stays
      pending, so the next plan sends it again, re-rendered, when it may.
    - The opt-out confirmation: when the number cannot receive SMS, or its amount would no longer be
      true (a payment, the account's end). The customer is owed it: it stays pending and goes again,
      re-rendered, also after the account ended.
    - A call task: when the account ended, or a call or a promise ended the phone stage.
    - A specialist hand-off: only when the account ended.
    """
    if kind is ActionKind.REMINDER:
        return True
    if kind is ActionKind.SERVICE_SMS:
        if template is TemplateName.OPT_OUT_CONFIRMATION:
            return reason in _ENDED or reason in (CancelReason.SMS_UNDELIVERABLE, CancelReason.AMOUNT_CHANGED)
        return reason in _ENDED or reason in _NO_LONGER_TRUE
    if kind is ActionKind.CALL_TASK:
        return reason in _ENDED or reason in (CancelReason.REACHED, CancelReason.PROMISE_TO_PAY)
    return reason in _ENDED


class Entry(NamedTuple):
    """A timeline entry to record; ``audited`` when the activity that acted already wrote it."""

    kind: TimelineKind
    detail: str
    audited: bool = False


@dataclass(frozen=True)
class Effect:
    """The outcome of one input: the new state and what the workflow must do about it."""

    state: AccountState
    entries: tuple[Entry, ...] = ()
    stale: CancelReason | None = None
    """Why an action in flight may have become unwanted (``cancels`` decides for which kinds)."""
    store_opt_out: bool = False
    """The opt-out must be stored beyond the workflow (``record_opt_out``)."""
    phone_changed: bool = False
    """The number changed: the phone index must follow it."""
    refresh: RefreshPolicy | None = None
    """The segment's policy must be resolved again."""
    escalated_to_person: bool = False


# --- signals -------------------------------------------------------------------------------------


def apply_signal(
    state: AccountState,
    name: SignalName,
    payload: Any,
    now: datetime,
    *,
    strict: bool = True,
    rules_1_2: bool = True,
) -> Effect:
    """The effect of signal ``name`` with ``payload`` (raw JSON, possibly garbage) at ``now``.

    A payload that does not validate, or a signal the account cannot take now
    (``kindly.domain.refusals``), leaves the state as it was and records why it was rejected. An ended
    account ignores signals. ``strict`` and ``rules_1_2`` are the refusals' (runs recorded before 1.1
    and 1.2 pass False).
    """
    if state.outcome is not None:
        return Effect(state)
    message = parsed(name, payload)
    if isinstance(message, Refusal):
        return _rejected(state, f"{name}: {message}")
    refused = refusal(state, message, now, strict=strict, rules_1_2=rules_1_2)
    if refused is not None:
        return _rejected(state, f"{name}: {refused}")
    return _apply(state.model_copy(), message, now, rules_1_2=rules_1_2)


def _rejected(state: AccountState, why: str) -> Effect:
    return Effect(state, (Entry(TimelineKind.SIGNAL_REJECTED, why),))


def _apply(state: AccountState, message: BaseModel, now: datetime, *, rules_1_2: bool) -> Effect:
    """``state`` is the caller's own copy."""
    today = local_date(state, now)
    if isinstance(message, Repayment):
        return _credit(state, message)
    if isinstance(message, CustomerReply):
        return _on_reply(state, message)
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
    assert isinstance(message, UpdateContact), type(message)
    return _update_contact(state, message)


def _resume(state: AccountState, *, rules_1_2: bool) -> Effect:
    """Contact starts again from now: a pause ends, and on the 1.2 rules an account the specialists held
    goes back to the automated cadence."""
    state.paused, state.paused_until = False, None
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


def _on_reply(state: AccountState, reply: CustomerReply) -> Effect:
    state.unanswered_sms = 0
    intent = classify_reply(reply.text, state.policy.reply_keywords)
    # The reply's text may hold personal data: the timeline keeps only what it meant.
    received = Entry(TimelineKind.REPLY_RECEIVED, f"reply ({intent}, {len(reply.text)} chars)")
    if intent is ReplyIntent.OPT_OUT:
        if state.opted_out:
            return Effect(state, (received,))
        state.opted_out = True
        # After STOP only the confirmation: it replaces every service reply still owed (none goes to a
        # number the carrier reported unreachable).
        state.pending_service = [] if state.sms_undeliverable else [TemplateName.OPT_OUT_CONFIRMATION]
        opted_out = Entry(TimelineKind.OPTED_OUT, "no further SMS; escalation continues by phone")
        return Effect(state, (received, opted_out), CancelReason.OPTED_OUT, store_opt_out=True)
    if intent in (ReplyIntent.HARDSHIP, ReplyIntent.DISPUTE):
        # Automated contact stops; a person takes the account, told why (not the text).
        if state.escalation != Stage.SPECIALIST:
            state.specialist_reason = f"customer reported {intent}: needs a person"
        handed = Entry(TimelineKind.HANDED_TO_PERSON, f"{intent} reported; automated contact stops")
        reason = CancelReason.HARDSHIP if intent is ReplyIntent.HARDSHIP else CancelReason.DISPUTE
        return Effect(state, (received, handed), reason, escalated_to_person=True)
    owed = not state.opted_out and not state.sms_undeliverable
    if intent is ReplyIntent.HELP and owed and TemplateName.HELP not in state.pending_service:
        state.pending_service = [*state.pending_service, TemplateName.HELP]
    return Effect(state, (received,))


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
