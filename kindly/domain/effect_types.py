"""The vocabulary of effects: what a signal or a finished action does to an account (:class:`Effect`), the
timeline entries it records (:class:`Entry`), and why an action still in flight may have become unwanted
(:class:`CancelReason`, ``cancels``). ``kindly.domain.effects`` and the modules beside it make effects."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from kindly.domain.contract import RefreshPolicy, TemplateName, TimelineKind
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
    PLAN_CHOSEN = "plan_chosen"
    """The customer chose an instalment plan: its reminders replace the overdue cadence and calls."""
    COMPLAINT = "complaint"
    """A complaint opened: automated contact is held (reminders, replies that are not the opt-out
    confirmation, and call tasks)."""


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
        CancelReason.COMPLAINT,
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
    - A call task: when the account ended, or a call, a promise or a plan ended the phone stage, or a
      complaint holds contact.
    - A specialist hand-off: only when the account ended.
    """
    if kind is ActionKind.REMINDER:
        return True
    if kind is ActionKind.SERVICE_SMS:
        if template is TemplateName.OPT_OUT_CONFIRMATION:
            return reason in _ENDED or reason in (CancelReason.SMS_UNDELIVERABLE, CancelReason.AMOUNT_CHANGED)
        return reason in _ENDED or reason in _NO_LONGER_TRUE
    if kind is ActionKind.CALL_TASK:
        return reason in _ENDED or reason in (
            CancelReason.REACHED,
            CancelReason.PROMISE_TO_PAY,
            CancelReason.PLAN_CHOSEN,
            CancelReason.COMPLAINT,
        )
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
    complaint_changed: bool = False
    """A complaint opened, was acknowledged, resolved or escalated: the complaints table must follow."""


# --- signals -------------------------------------------------------------------------------------
