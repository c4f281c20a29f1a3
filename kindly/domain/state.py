"""An account's whole state in one object: what the workflow knows and carries across continue-as-new."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

from pydantic import BaseModel, Field

from kindly.domain.complaints import Complaint
from kindly.domain.contract import (
    AccountInput,
    NextStep,
    Outcome,
    Stage,
    TemplateName,
    TimelineEntry,
    TimelineKind,
)
from kindly.domain.experiments import Assignment
from kindly.domain.plans import InstalmentPlan
from kindly.domain.policy.model import ContactPolicy
from kindly.domain.search_attributes import (
    AMOUNT_DUE,
    COLLECTION_STAGE,
    CURRENCY,
    EXPERIMENT_ARM,
    NEXT_TOUCHPOINT_AT,
    PAUSED,
    SEGMENT,
    TIME_ZONE,
    UNANSWERED_SMS,
    Published,
)

TIMELINE_LIMIT = 500
"""Older timeline entries stay in the audit log; the workflow keeps the most recent ones."""


class AccountState(BaseModel):
    account: AccountInput
    policy: ContactPolicy
    started_on: date
    """The customer's local date when collection started: earlier reminders are never owed."""

    amount_due: Decimal
    amount_collected: Decimal = Decimal("0")
    credited_references: list[str] = Field(default_factory=list)

    # Cadence
    done_touches: list[str] = Field(default_factory=list)
    last_touch_date: date | None = None
    sms_days: list[date] = Field(default_factory=list)
    """Local dates of reminders sent, oldest first; the workflow keeps the latest 14, which the
    daily and 7-day caps rely on (neither cap may exceed 14)."""
    sms_sent: int = 0
    unanswered_sms: int = 0
    touchpoints: int = 0
    """Sequence number of touchpoints (SMS, calls, hand-offs): part of every idempotency key."""

    # The customer's own stated window ("not before 10:00"), local time: it only narrows the
    # policy's preferred window, never widens it.
    contact_after: time | None = None
    contact_before: time | None = None

    # Holds
    paused: bool = False
    pause_reason: str | None = None
    paused_until: datetime | None = None
    promise_date: date | None = None
    promise_broken: bool = False
    instalment_offered: bool = False
    opted_out: bool = False
    sms_undeliverable: bool = False
    """The carrier reported the number permanently unreachable by SMS."""
    pending_service: list[TemplateName] = Field(default_factory=list)

    # Escalation
    escalation: Stage | None = None
    """``phone`` or ``specialist`` once the account has left the SMS cadence."""
    phone_attempt: int = 0
    phone_requested_at: datetime | None = None
    call_attempt_days: list[date] = Field(default_factory=list)
    """Local dates of call tasks created (one attempt each), oldest first; the workflow keeps the
    latest ``CALL_HISTORY_KEPT`` (14), which the regimes' call caps rely on."""
    conversation_days: list[date] = Field(default_factory=list)
    """Local dates of call outcomes other than ``no_answer`` (connected calls), oldest first; the
    workflow keeps the latest ``CALL_HISTORY_KEPT`` (14)."""
    specialist_reason: str | None = None
    """Set when the specialist hand-off is owed but not yet made."""
    call_back_at: datetime | None = None
    """When the customer asked to be called back: the next call task is made for that moment."""
    plan: InstalmentPlan | None = None
    """The instalment plan the customer chose on the self-service page (``kindly.domain.plans``); kept,
    with its status, once broken or completed."""
    complaints: list[Complaint] = Field(default_factory=list)
    """Every complaint the account had (``kindly.domain.complaints``), oldest first; at most one open."""
    complaint_hold: bool = False
    """Automated contact is held for a complaint: set as one opens, cleared only by an operator's
    ``resume`` once none is open."""
    plan_break_owed: bool = False
    """The plan broke: the next overdue reminder is the firmer ``plan_broken`` message, sent at once."""

    outcome: Outcome | None = None
    next_touchpoint_at: datetime | None = None
    next_step: NextStep | None = None
    experiment: Assignment | None = None
    """The arm of a running experiment the account got as it started; it keeps it for life."""
    last_shadow_plan_key: str | None = None
    """The shadow arm's latest plan, so that each is recorded once."""
    """What the latest plan does next (the ``status`` query shows it)."""
    last_plan_key: str | None = None
    # Set when the gateway did not take an SMS before its window closed (retries ran out, Temporal
    # gives up early once the next backoff would pass the window's end): no SMS is planned before
    # this instant, so the message waits for the next window instead of retrying in the same one.
    sms_not_before: datetime | None = None

    timeline: list[TimelineEntry] = Field(default_factory=list)
    events_recorded: int = 0
    """Count of timeline entries ever recorded: the sequence behind audit event keys."""
    events_audited: int = 0
    """How many of them have reached the audit log."""

    @classmethod
    def for_new_account(
        cls,
        account: AccountInput,
        policy: ContactPolicy,
        started_on: date,
        *,
        opted_out: bool,
        experiment: Assignment | None = None,
    ) -> AccountState:
        """A new account's state before anything happened."""
        return cls(
            account=account,
            policy=policy,
            started_on=started_on,
            amount_due=account.amount_due,
            contact_after=account.contact_after,
            contact_before=account.contact_before,
            opted_out=opted_out,
            experiment=experiment,
        )


def start_entries(
    account: AccountInput, *, opted_out: bool, experiment: Assignment | None = None
) -> list[tuple[TimelineKind, str]]:
    """The timeline entries a new run begins with, in order (its first audit events): the workflow
    records them, and the activity that prepares the run writes them to the audit log."""
    entries = [
        (
            TimelineKind.STARTED,
            f"segment {account.segment}, {account.amount_due} {account.currency} due {account.due_date}",
        )
    ]
    if opted_out:
        entries.append((TimelineKind.OPTED_OUT, "number opted out earlier: no SMS, contact by phone"))
    if experiment is not None:
        shadow = " (shadow: acts as the champion)" if experiment.shadow else ""
        entries.append(
            (
                TimelineKind.EXPERIMENT_ASSIGNED,
                f"experiment {experiment.experiment} arm {experiment.arm}{shadow}",
            )
        )
    return entries


def audit_event_key(workflow_id: str, first_run_id: str, sequence: int) -> str:
    """The audit log's key of a run's ``sequence``-th timeline entry (``events_recorded`` order)."""
    return f"{workflow_id}/{first_run_id}/ev-{sequence}"


def published_values(
    state: AccountState, today: date, next_touchpoint_at: datetime | None, *, with_zone: bool = True
) -> Published:
    """The attribute values the workflow keeps true (``DueDate`` never changes and is left to the
    start): its stage, amount, unanswered SMS, next touchpoint, segment and pause; and, ``with_zone``,
    its currency and time zone, which a start gives and a contact change may move (runs recorded
    before 1.1 pass False: they never published them)."""
    values: Published = {
        COLLECTION_STAGE.name: current_stage(state, today).value,
        AMOUNT_DUE.name: float(state.amount_due),
        UNANSWERED_SMS.name: state.unanswered_sms,
        NEXT_TOUCHPOINT_AT.name: next_touchpoint_at,
        SEGMENT.name: state.account.segment,
        PAUSED.name: state.paused or state.complaint_hold,
    }
    if with_zone:
        values[CURRENCY.name] = state.account.currency
        values[TIME_ZONE.name] = state.account.timezone
    if state.experiment is not None:
        values[EXPERIMENT_ARM.name] = state.experiment.label
    return values


def current_stage(state: AccountState, today: date) -> Stage:
    """The stage operators see, derived from the state and the customer's local date."""
    if state.outcome is not None:
        return {
            Outcome.REPAID: Stage.REPAID,
            Outcome.SETTLED: Stage.SETTLED,
            Outcome.CLOSED: Stage.CLOSED,
        }[state.outcome]
    if state.paused or state.complaint_hold:
        return Stage.PAUSED
    if state.escalation is not None:
        return state.escalation
    if state.promise_date is not None:
        return Stage.PROMISE
    return stage_by_date(state.account.due_date, today)


def stage_by_date(due: date, today: date) -> Stage:
    """The stage of an account nothing has happened to yet: where the calendar alone puts it."""
    if today < due:
        return Stage.PRE_DUE
    if today == due:
        return Stage.DUE
    return Stage.OVERDUE
