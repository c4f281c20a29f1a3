"""The ``status`` query's answer: where an account stands, from its state or, before its first plan, from
its input and the calendar. Instants are shown in the customer's zone (with its UTC offset) and amounts
with two decimal places, as everywhere else an operator reads them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from kindly.domain.complaints import Complaint
from kindly.domain.contract import AccountInput, AccountStatus, Stage
from kindly.domain.policy.schedule import local_date, zone_date
from kindly.domain.state import AccountState, current_stage, stage_by_date

CENTS = Decimal("0.01")


def account_status(state: AccountState, now: datetime) -> AccountStatus:
    """Where the account stands as of its latest plan; an ended account has no next touchpoint."""
    zone = state.account.timezone
    ended = state.outcome is not None
    return AccountStatus(
        account_id=state.account.account_id,
        stage=current_stage(state, local_date(state, now)),
        amount_due=state.amount_due.quantize(CENTS),
        amount_collected=state.amount_collected.quantize(CENTS),
        currency=state.account.currency,
        sms_sent=state.sms_sent,
        unanswered_sms=state.unanswered_sms,
        next_touchpoint_at=None if ended else in_zone(zone, state.next_touchpoint_at),
        next_step=None if ended else state.next_step,
        paused=state.paused,
        paused_until=in_zone(zone, state.paused_until),
        promise_date=state.promise_date,
        opted_out=state.opted_out,
        escalation=Stage(state.escalation) if state.escalation is not None else None,
        plan=state.plan,
        complaints=[complaint_in_zone(zone, complaint) for complaint in state.complaints],
        contact_held_for_complaint=state.complaint_hold,
    )


def complaint_in_zone(timezone: str, complaint: Complaint) -> Complaint:
    """A complaint with its instants in the customer's zone, as operators read every instant."""
    instants = {
        name: in_zone(timezone, value)
        for name, value in complaint.model_dump().items()
        if isinstance(value, datetime)
    }
    return complaint.model_copy(update=instants)


def status_before_start(account: AccountInput, now: datetime) -> AccountStatus:
    """While a new run prepares itself (``kindly status`` right after an import): nothing sent, no plan
    yet, the stage the calendar gives."""
    return AccountStatus(
        account_id=account.account_id,
        stage=stage_by_date(account.due_date, zone_date(account.timezone, now)),
        amount_due=account.amount_due.quantize(CENTS),
        currency=account.currency,
        sms_sent=0,
        unanswered_sms=0,
        next_touchpoint_at=None,
        paused=False,
    )


def in_zone(timezone: str, instant: datetime | None) -> datetime | None:
    """``instant`` in the customer's zone, to the second (its ISO form carries the zone's offset)."""
    if instant is None:
        return None
    return instant.astimezone(ZoneInfo(timezone)).replace(microsecond=0)
