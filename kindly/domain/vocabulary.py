"""The words of an account's record: the kinds of its timeline entries and the names of its message
templates. Part of the public contract (``kindly.domain.contract`` re-exports them): operators filter the
timeline and the audit log by these kinds, and templates are files named after these names."""

from __future__ import annotations

from enum import StrEnum


class TimelineKind(StrEnum):
    """Every decision the workflow takes shows in its timeline under one of these kinds."""

    STARTED = "started"
    SMS_SENT = "sms_sent"
    SMS_FAILED = "sms_failed"
    REMINDER_CANCELLED = "reminder_cancelled"
    """An SMS still retrying was cancelled before the gateway took it: the change that made it unwanted
    (an opt-out, a payment, a pause, ...) is named in the detail."""
    DEFERRED = "deferred"
    SKIPPED = "skipped"
    REPLY_RECEIVED = "reply_received"
    OPTED_OUT = "opted_out"
    REPAYMENT_RECEIVED = "repayment_received"
    PAUSED = "paused"
    RESUMED = "resumed"
    PROMISE = "promise"
    PROMISE_BROKEN = "promise_broken"
    ESCALATED_PHONE = "escalated_phone"
    ESCALATED_SPECIALIST = "escalated_specialist"
    HANDOFF_CANCELLED = "handoff_cancelled"
    """A call task or specialist hand-off still retrying was cancelled: the account no longer needs it."""
    CALL_OUTCOME = "call_outcome"
    CONTACT_UPDATED = "contact_updated"
    SETTLED = "settled"
    CLOSED = "closed"
    REPAID = "repaid"
    SMS_UNDELIVERABLE = "sms_undeliverable"
    HANDED_TO_PERSON = "handed_to_person"
    SIGNAL_REJECTED = "signal_rejected"
    CONTINUED_AS_NEW = "continued_as_new"
    POLICY_REFRESHED = "policy_refreshed"
    SHADOW_PLAN = "shadow_plan"
    """What a shadow arm's policy would do next, given the account's real history (it sends nothing):
    ``arm <arm> would <send the template / escalate / ...> at <instant>``."""
    SELF_SERVICE = "self_service"
    """A choice the customer made on the self-service page (pay, promise, a plan, help, stop SMS)."""
    PLAN_BROKEN = "plan_broken"
    EXPERIMENT_ASSIGNED = "experiment_assigned"
    """The account's arm in a running experiment, taken once as the account started: ``experiment
    <name> arm <arm>``."""
    COMPLAINT_OPENED = "complaint_opened"
    """A complaint about how the lender collects: ``complaint <n> opened (<channel>) ...``; automated
    contact is held until an operator resumes it after the complaint's resolution."""
    COMPLAINT_ACKNOWLEDGED = "complaint_acknowledged"
    COMPLAINT_RESOLVED = "complaint_resolved"
    COMPLAINT_ACKNOWLEDGEMENT_OVERDUE = "complaint_acknowledgement_overdue"
    """A complaint was not acknowledged by its deadline: escalated (counted as acknowledged late)."""
    COMPLAINT_RESOLUTION_OVERDUE = "complaint_resolution_overdue"
    """A complaint was not resolved by its deadline: escalated (counted as resolved late)."""


class TemplateName(StrEnum):
    """Message templates; each exists for every supported locale."""

    PRE_DUE = "pre_due"
    DUE_TODAY = "due_today"
    FIRST_OVERDUE = "first_overdue"
    FOLLOW_UP = "follow_up"
    BROKEN_PROMISE = "broken_promise"
    GENTLE_REMINDER = "gentle_reminder"
    INSTALMENT_OFFER = "instalment_offer"
    INSTALMENT_DUE = "instalment_due"
    """The day before an instalment of the customer's plan."""
    PLAN_BROKEN = "plan_broken"
    """An instalment was missed past its grace: the plan ends and the overdue cadence resumes."""
    HELP = "help"
    OPT_OUT_CONFIRMATION = "opt_out_confirmation"
