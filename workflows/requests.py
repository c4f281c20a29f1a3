"""What leaves the workflow: the activity inputs an account's actions send, built from its state, and
how those activities run.

Each carries the touchpoint's idempotency key (the same on every retry and replay, so the gateway and
the phone system take it once) and the audit entries waiting for an activity (``AuditTrail.pending``),
which the activity writes in its own transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from activities.inputs import (
    AuditRecord,
    CallTaskInput,
    CancelSendInput,
    ComplaintRecord,
    RecordChangesInput,
    RunIdentity,
    SendSmsInput,
    SpecialistHandoffInput,
    WorkItemFacts,
)
from kindly.domain.actions import message_context
from kindly.domain.cases import case_kind
from kindly.domain.completions import Handoff, SmsAction
from kindly.domain.effects import CancelReason
from kindly.domain.policy.limits import contact_window
from kindly.domain.policy.schedule import Step
from kindly.domain.state import AccountState

SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=10)
)
ACTION_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {
        "start_to_close_timeout": timedelta(seconds=60),
        "retry_policy": SEND_RETRY,
        "cancellation_type": workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }
)
"""How sends and hand-offs run: hand-offs retry without a deadline (an outage of the phone system must
not fail the account); SMS retry until their window closes (schedule-to-close), then wait for the next
one. A cancellation waits for the attempt on the wire to finish, so its outcome is known."""
LOCAL = timedelta(seconds=30)
"""Start-to-close of the bookkeeping local activities (database writes)."""
SMS_TASK_QUEUE_SUFFIX = "-sms"
"""SMS go to ``<task queue>-sms``, whose Temporal rate limit is the gateway's accepted rate."""


def idempotency_key(run: RunIdentity, touchpoint: int) -> str:
    """The touchpoint's key: stable across retries, replays and continue-as-new."""
    return f"{run.workflow_id}/{run.first_run_id}/tp-{touchpoint}"


def sms(
    state: AccountState, step: Step, action: SmsAction, key: str, decisions: list[AuditRecord], now: datetime
) -> SendSmsInput:
    return SendSmsInput(
        account_id=state.account.account_id,
        idempotency_key=key,
        touchpoint=action.touchpoint,
        template=action.template,
        locale=state.account.locale,
        to=state.account.phone,
        context=message_context(state, now),
        not_after=step.not_after,
        decisions=decisions,
    )


def sms_cancellation(
    state: AccountState, action: SmsAction, reason: CancelReason, key: str, decisions: list[AuditRecord]
) -> CancelSendInput:
    return CancelSendInput(
        idempotency_key=key,
        account_id=state.account.account_id,
        touchpoint=action.touchpoint,
        template=action.template,
        reason=reason,
        decisions=decisions,
    )


def work_item_facts(state: AccountState) -> WorkItemFacts:
    """What the built-in queues order and show a person's task by, none of it personal."""
    start, end = contact_window(state)
    account = state.account
    return WorkItemFacts(
        due_date=account.due_date,
        timezone=account.timezone,
        locale=account.locale,
        segment=account.segment,
        regime=state.policy.regime,
        window_start=start,
        window_end=end,
        promise_broken=state.promise_broken,
    )


def call_task(
    state: AccountState,
    step: Step,
    handoff: Handoff,
    key: str,
    decisions: list[AuditRecord],
    *,
    with_facts: bool,
) -> CallTaskInput:
    """``with_facts``: runs on the 1.2 rules send the queue's facts and the call-back's time."""
    return CallTaskInput(
        account_id=state.account.account_id,
        attempt=handoff.attempt,
        phone=state.account.phone,
        amount_due=state.amount_due,
        currency=state.account.currency,
        reason=handoff.reason,
        idempotency_key=key,
        decisions=decisions,
        facts=work_item_facts(state) if with_facts else None,
        call_back_at=state.call_back_at if with_facts else None,
        offered_until=step.not_after if with_facts else None,
    )


def specialist_handoff(
    state: AccountState, handoff: Handoff, key: str, decisions: list[AuditRecord], *, with_facts: bool
) -> SpecialistHandoffInput:
    """``with_facts``: runs on the 1.2 rules send the queue's facts and the kind of case."""
    return SpecialistHandoffInput(
        account_id=state.account.account_id,
        amount_due=state.amount_due,
        currency=state.account.currency,
        reason=handoff.reason,
        idempotency_key=key,
        decisions=decisions,
        facts=work_item_facts(state) if with_facts else None,
        case=str(case_kind(state)) if with_facts else None,
    )


def changes(
    state: AccountState,
    phone_changed: bool,
    opted_out: bool,
    decisions: list[AuditRecord],
    complaints_changed: bool = False,
) -> RecordChangesInput:
    """What ``record_changes`` writes; with ``complaints_changed``, every complaint of the account as it
    stands (an account has few: the table upserts them)."""
    account = state.account
    complaints = [
        ComplaintRecord(
            account_id=account.account_id,
            segment=account.segment,
            timezone=account.timezone,
            locale=account.locale,
            complaint=complaint,
        )
        for complaint in (state.complaints if complaints_changed else [])
    ]
    return RecordChangesInput(
        account_id=account.account_id,
        phone=account.phone,
        phone_changed=phone_changed,
        opted_out=opted_out,
        decisions=decisions,
        complaints=complaints,
    )
