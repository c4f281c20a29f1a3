"""Inputs and results of every activity: one model each, shared by workflow and activities.

These travel through Temporal history, so they hold only what the activity needs. Message context
carries the loan reference already masked; the phone number travels only to the activity that
dials or texts it.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from kindly.domain.complaints import Complaint
from kindly.domain.contract import AccountInput, TemplateName
from kindly.domain.experiments import Assignment
from kindly.domain.messages.context import MessageContext
from kindly.domain.policy.model import ContactPolicy


class _ActivityModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class AuditRecord(_ActivityModel):
    """One decision for the audit log. ``event_key`` makes writing it idempotent."""

    event_key: str
    account_id: str
    at: datetime
    kind: str
    detail: str
    touchpoint: int | None = None
    template: str | None = None


class SendSmsInput(_ActivityModel):
    account_id: str
    idempotency_key: str
    touchpoint: int
    template: TemplateName
    locale: str
    to: str
    context: MessageContext
    # The end of the contact window this send was planned for: an attempt scheduled after it is
    # refused so that a long gateway outage can never push a message into quiet hours.
    not_after: datetime | None = None
    decisions: list[AuditRecord] = []


class SendSmsResult(_ActivityModel):
    status: Literal["sent", "duplicate", "rejected", "window_closed", "frequency_limited", "provider_blocked"]
    """``frequency_limited``: the provider's per-number frequency limit refused the message;
    ``provider_blocked``: the lender's provider account cannot send (an alarm is open). Nothing went out
    in either case, and ``detail`` holds the provider's code."""
    provider_message_id: str | None = None
    segments: int = 0
    detail: str = ""
    retry_after_seconds: int | None = None
    """For ``frequency_limited``: how long the provider's limit lasts when it says (a minute's, an hour's);
    None: a day's, so the next window."""
    variant: str | None = None
    """The label of the template variant the message was made from (``default``, ``segments/gentle``,
    ...) when it went out; None from sends before variants, and when nothing went out."""


class CancelSendInput(_ActivityModel):
    """Close a cancelled SMS touchpoint's outbox row, with the decisions since the last activity (the
    cancellation among them)."""

    account_id: str
    idempotency_key: str
    touchpoint: int
    template: TemplateName
    reason: str
    decisions: list[AuditRecord] = []


class WorkItemFacts(_ActivityModel):
    """What a person's work queue orders, filters and shows a task by, none of it personal: the due
    date (days past due), the customer's zone and locale (local dates, the call script's language),
    the segment, the regime (its call limits) and the window calls may happen in, local time."""

    due_date: date
    timezone: str
    locale: str
    segment: str
    regime: str
    window_start: time
    window_end: time
    promise_broken: bool = False
    """A promise to pay was broken: the queue puts the account before others."""


class CallTaskInput(_ActivityModel):
    account_id: str
    attempt: int
    phone: str
    amount_due: Decimal
    currency: str
    reason: str
    idempotency_key: str
    decisions: list[AuditRecord] = []
    facts: WorkItemFacts | None = None
    """Runs on the 1.2 rules send them (the built-in queue needs them); earlier runs did not."""
    call_back_at: datetime | None = None
    """The moment the customer asked to be called back at, when this call is that call-back."""
    offered_until: datetime | None = None
    """The end of the window of the day the call was planned for: the law and the policy (holidays,
    the customer's birthday, blocked dates, call limits) allowed that day, so the task is offered until
    then; a later call is the account's next attempt, planned afresh."""


class SpecialistHandoffInput(_ActivityModel):
    account_id: str
    amount_due: Decimal
    currency: str
    reason: str
    idempotency_key: str
    decisions: list[AuditRecord] = []
    facts: WorkItemFacts | None = None
    case: str | None = None
    """The kind of case (``kindly.domain.cases.CaseKind``), on runs on the 1.2 rules."""


class HandoffResult(_ActivityModel):
    status: Literal["accepted", "logged", "rejected"]
    detail: str = ""


class ResolvePolicyInput(_ActivityModel):
    segment: str
    experiment: Assignment | None = None
    """The account's arm: the policy resolved is the segment's with the arm's overlay."""


class RunIdentity(_ActivityModel):
    """An account's run chain: the workflow id and its first run's id, which audit keys and idempotency
    keys are built from (the same across continue-as-new)."""

    workflow_id: str
    first_run_id: str


class PrepareAccountInput(_ActivityModel):
    """What a new run asks of the world before it can plan, in one local activity; it also writes the
    run's first audit entries (``start_entries``) under their keys, dated ``at``."""

    account: AccountInput
    run: RunIdentity
    at: datetime


class PreparedAccount(_ActivityModel):
    policy: ContactPolicy
    """The segment's policy as resolved now, recorded in history so that later edits of the policy
    file cannot change what replay decides."""
    opted_out: bool
    """The number opted out of SMS before, under this or another account."""
    experiment: Assignment | None = None
    """The arm of the experiment running for the segment, if any; ``policy`` is already the arm's."""


class ComplaintRecord(_ActivityModel):
    """A complaint as the complaints table keeps it (``kindly.store.complaints``), with the account's
    facts its queue shows it by: none of them personal."""

    account_id: str
    segment: str
    timezone: str
    locale: str
    complaint: Complaint


class RecordChangesInput(_ActivityModel):
    """What signals changed beyond the workflow, written together: the number to index in place of the
    account's old one, an opt-out to keep, the complaints that changed, and the audit entries since the
    last activity."""

    account_id: str
    phone: str
    phone_changed: bool
    opted_out: bool
    decisions: list[AuditRecord] = []
    complaints: list[ComplaintRecord] = []
    """Each complaint that opened, was acknowledged, resolved or escalated since the last write, as it
    stands now (an upsert by account and number)."""
