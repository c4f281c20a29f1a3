"""The ``status`` query's answer: where an account stands, from its state or, before its first plan, from
its input and the calendar."""

from __future__ import annotations

from datetime import datetime

from kindly.domain.contract import AccountInput, AccountStatus
from kindly.domain.policy.schedule import local_date, zone_date
from kindly.domain.state import AccountState, current_stage, stage_by_date


def account_status(state: AccountState, now: datetime) -> AccountStatus:
    return AccountStatus(
        account_id=state.account.account_id,
        stage=current_stage(state, local_date(state, now)),
        amount_due=state.amount_due,
        sms_sent=state.sms_sent,
        unanswered_sms=state.unanswered_sms,
        next_touchpoint_at=state.next_touchpoint_at,
        paused=state.paused,
    )


def status_before_start(account: AccountInput, now: datetime) -> AccountStatus:
    """While a new run prepares itself (``kindly status`` right after an import): nothing sent, no plan
    yet, the stage the calendar gives."""
    return AccountStatus(
        account_id=account.account_id,
        stage=stage_by_date(account.due_date, zone_date(account.timezone, now)),
        amount_due=account.amount_due,
        sms_sent=0,
        unanswered_sms=0,
        next_touchpoint_at=None,
        paused=False,
    )
