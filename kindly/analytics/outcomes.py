"""Per-account outcomes, folded from the account's audit entries: what was sent, what the customer did,
and how the account ended. Pure: ``fold`` takes the entries, ``kindly.analytics.outcome_table`` keeps the
results in the derived table ``account_outcomes``. The definitions are written for users in
``docs/analytics.md``; change one and bump ``OUTCOMES_VERSION``, and every stored outcome is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from kindly.analytics import details
from kindly.domain.contract import TimelineKind

OUTCOMES_VERSION = 2
"""The definitions' version: a table folded under another version is rebuilt at the next refresh."""

NO_ARM = "none"
"""The arm of an account that no ``experiment_assigned`` entry put in the experiment."""
EXPERIMENT_ASSIGNED = "experiment_assigned"
UNKNOWN_TEMPLATE = "unknown"

FOLDED_KINDS: tuple[str, ...] = (
    TimelineKind.STARTED,
    EXPERIMENT_ASSIGNED,
    TimelineKind.SMS_SENT,
    TimelineKind.REPLY_RECEIVED,
    TimelineKind.OPTED_OUT,
    TimelineKind.HANDED_TO_PERSON,
    TimelineKind.REPAYMENT_RECEIVED,
    TimelineKind.SETTLED,
    TimelineKind.REPAID,
    TimelineKind.CLOSED,
    TimelineKind.PROMISE,
    TimelineKind.PROMISE_BROKEN,
    TimelineKind.ESCALATED_PHONE,
    TimelineKind.ESCALATED_SPECIALIST,
    TimelineKind.COMPLAINT_OPENED,
    TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE,
    TimelineKind.COMPLAINT_RESOLUTION_OVERDUE,
)
"""The audit kinds an outcome reads; the others (deferrals, receipts, pauses, ...) change none."""

RESPONSES = ("replies", "opt_outs", "disputes", "hardships")
"""What a customer did after an SMS, counted against the template of the last SMS before it."""
COMPLAINT_FIGURES = ("complaints", "complaints_acknowledged_late", "complaints_resolved_late")
"""A complaint opened, and those of its deadlines the lender missed: counted against the template of the
last SMS before the complaint opened."""


class AuditEvent(NamedTuple):
    """The columns of an audit row that the outcomes read; ``at`` aware UTC."""

    id: int
    at: datetime
    kind: str
    detail: str
    template: str | None


def as_utc(value: datetime) -> datetime:
    """Timestamps come back naive (UTC) from SQLite and aware from PostgreSQL."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(slots=True)
class AccountOutcome:
    """One account's outcome as its audit entries tell it (see ``docs/analytics.md``)."""

    account_id: str
    segment: str | None = None
    currency: str | None = None
    amount_due: Decimal | None = None
    due_date: date | None = None
    started_at: datetime | None = None
    experiments: dict[str, str] = field(default_factory=dict)
    cured_at: datetime | None = None
    settled_at: datetime | None = None
    closed_at: datetime | None = None
    collected: Decimal = Decimal("0")
    repayments: int = 0
    sms_sent: int = 0
    templates: dict[str, dict[str, int]] = field(default_factory=dict)
    """``{template: {"sent": n, "replies": n, ..., "complaints": n, ...}}`` (``RESPONSES`` and
    ``COMPLAINT_FIGURES``); the responses and complaints are those that followed an SMS of the template
    (the last one sent before them, or before the complaint opened)."""
    call_tasks: int = 0
    replies: int = 0
    opted_out: bool = False
    hardship: bool = False
    dispute: bool = False
    promises_made: int = 0
    promises_kept: int = 0
    promises_broken: int = 0
    escalated_specialist: bool = False
    complaints_opened: int = 0
    complaints_acknowledged_late: int = 0
    """``complaint_acknowledgement_overdue`` entries: complaints not acknowledged by their deadline."""
    complaints_resolved_late: int = 0
    """``complaint_resolution_overdue`` entries: complaints not resolved by their deadline."""
    last_audit_id: int = 0

    @property
    def cohort(self) -> str | None:
        """The due date's month, ``YYYY-MM``."""
        return None if self.due_date is None else f"{self.due_date:%Y-%m}"

    @property
    def cured(self) -> bool:
        """Repaid in full (a ``repaid`` entry)."""
        return self.cured_at is not None

    @property
    def cure_day(self) -> int | None:
        """Days from the due date to the cure: the UTC date of the ``repaid`` entry minus the due date
        (negative when paid in full before the due date)."""
        if self.cured_at is None or self.due_date is None:
            return None
        return (self.cured_at.date() - self.due_date).days

    @property
    def days_past_due_at_cure(self) -> int | None:
        day = self.cure_day
        return None if day is None else max(day, 0)

    def cured_within(self, days: int) -> bool:
        day = self.cure_day
        return day is not None and day <= days

    @property
    def escalated_phone(self) -> bool:
        return self.call_tasks > 0

    @property
    def settled(self) -> bool:
        return self.settled_at is not None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def replied(self) -> bool:
        return self.replies > 0

    def arm(self, experiment: str) -> str:
        return self.experiments.get(experiment, NO_ARM)

    def to_record(self) -> dict[str, Any]:
        """The row of ``account_outcomes``."""
        return {
            "account_id": self.account_id,
            "segment": self.segment,
            "currency": self.currency,
            "amount_due": None if self.amount_due is None else str(self.amount_due),
            "due_date": self.due_date,
            "started_at": self.started_at,
            "experiments": self.experiments,
            "cured_at": self.cured_at,
            "cure_day": self.cure_day,
            "settled_at": self.settled_at,
            "closed_at": self.closed_at,
            "collected": str(self.collected),
            "repayments": self.repayments,
            "sms_sent": self.sms_sent,
            "templates": self.templates,
            "call_tasks": self.call_tasks,
            "replies": self.replies,
            "opted_out": self.opted_out,
            "hardship": self.hardship,
            "dispute": self.dispute,
            "promises_made": self.promises_made,
            "promises_kept": self.promises_kept,
            "promises_broken": self.promises_broken,
            "escalated_specialist": self.escalated_specialist,
            "complaints_opened": self.complaints_opened,
            "complaints_acknowledged_late": self.complaints_acknowledged_late,
            "complaints_resolved_late": self.complaints_resolved_late,
            "last_audit_id": self.last_audit_id,
        }

    @classmethod
    def from_record(cls, row: Mapping[Any, Any]) -> AccountOutcome:
        """An outcome from a row of ``account_outcomes``, or from some of its columns (the others keep
        their defaults). The columns' types give aware UTC instants and booleans on both backends."""
        values = {name: value for name, value in row.items() if name != "cure_day"}
        if values.get("amount_due") is not None:
            values["amount_due"] = Decimal(values["amount_due"])
        if "collected" in values:
            values["collected"] = Decimal(values["collected"])
        return cls(**values)


@dataclass(slots=True)
class _Promise:
    by: date
    broken: bool = False
    paid_by_then: bool = False


def fold(account_id: str, events: Iterable[AuditEvent]) -> AccountOutcome:
    """The outcome of one account from its audit entries, taken in time order (``at``, then ``id``)."""
    folding = _Fold(AccountOutcome(account_id))
    for event in events:
        folding.take(event)
    return folding.result()


class _Fold:
    def __init__(self, outcome: AccountOutcome) -> None:
        self.outcome = outcome
        self.promises: list[_Promise] = []
        self.last_template: str | None = None
        self.complaint_templates: dict[int | None, str | None] = {}
        """The template of the last SMS before each complaint opened, by its number."""

    def take(self, event: AuditEvent) -> None:
        o = self.outcome
        o.last_audit_id = max(o.last_audit_id, event.id)
        kind = event.kind
        if kind == TimelineKind.SMS_SENT:
            template = event.template or details.sms_template(event.detail) or UNKNOWN_TEMPLATE
            o.sms_sent += 1
            self._count(template, "sent")
            self.last_template = template
        elif kind == TimelineKind.REPLY_RECEIVED:
            self._on_reply(details.reply_intent(event.detail))
        elif kind == TimelineKind.OPTED_OUT:
            o.opted_out = True
            self._respond("opt_outs")
        elif kind == TimelineKind.HANDED_TO_PERSON:
            intent = details.handed_intent(event.detail)
            o.hardship = o.hardship or intent == "hardship"
            o.dispute = o.dispute or intent == "dispute"
        elif kind == TimelineKind.REPAYMENT_RECEIVED:
            amount = details.repayment_amount(event.detail)
            o.repayments += 1
            self._money(amount, event.at)
        elif kind == TimelineKind.SETTLED:
            o.settled_at = o.settled_at or event.at
            self._money(details.settlement_amount(event.detail), event.at)
        elif kind == TimelineKind.REPAID:
            o.cured_at = o.cured_at or event.at
        elif kind == TimelineKind.CLOSED:
            o.closed_at = o.closed_at or event.at
        elif kind == TimelineKind.PROMISE:
            promised = details.promised_date(event.detail)
            o.promises_made += 1
            if promised is not None:
                self.promises.append(_Promise(promised))
        elif kind == TimelineKind.PROMISE_BROKEN:
            if self.promises:
                self.promises[-1].broken = True
        elif kind == TimelineKind.ESCALATED_PHONE:
            o.call_tasks += 1
        elif kind == TimelineKind.ESCALATED_SPECIALIST:
            o.escalated_specialist = True
        elif kind in _COMPLAINT_KINDS:
            self._on_complaint(kind, details.complaint_number(event.detail))
        elif kind == TimelineKind.STARTED:
            self._on_started(event)
        elif kind == EXPERIMENT_ASSIGNED:
            assigned = details.experiment_arm(event.detail)
            if assigned is not None:
                o.experiments.setdefault(*assigned)

    def result(self) -> AccountOutcome:
        o = self.outcome
        o.promises_broken = sum(1 for promise in self.promises if promise.broken)
        o.promises_kept = sum(1 for p in self.promises if p.paid_by_then and not p.broken)
        return o

    def _on_started(self, event: AuditEvent) -> None:
        o = self.outcome
        if o.started_at is not None:  # a later run of the account: its first start stands
            return
        start = details.started(event.detail)
        o.started_at = event.at
        if start is not None:
            o.segment, o.currency = start.segment, start.currency
            o.amount_due, o.due_date = start.amount_due, start.due_date

    def _on_reply(self, intent: str | None) -> None:
        o = self.outcome
        o.replies += 1
        self._respond("replies")
        if intent == "hardship":
            o.hardship = True
            self._respond("hardships")
        elif intent == "dispute":
            o.dispute = True
            self._respond("disputes")

    def _on_complaint(self, kind: str, number: int | None) -> None:
        o = self.outcome
        if kind == TimelineKind.COMPLAINT_OPENED:
            o.complaints_opened += 1
            self.complaint_templates[number] = self.last_template
            what = "complaints"
        elif kind == TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE:
            o.complaints_acknowledged_late += 1
            what = "complaints_acknowledged_late"
        else:
            o.complaints_resolved_late += 1
            what = "complaints_resolved_late"
        # A deadline missed counts against the template its complaint followed (the latest complaint's,
        # for a text that names none).
        latest = next(reversed(self.complaint_templates.values()), None)
        template = self.complaint_templates.get(number, latest)
        if template is not None:
            self._count(template, what)

    def _money(self, amount: Decimal | None, at: datetime) -> None:
        if amount is not None:
            self.outcome.collected += amount
        if self.promises and at.date() <= self.promises[-1].by:
            self.promises[-1].paid_by_then = True

    def _respond(self, what: str) -> None:
        if self.last_template is not None:
            self._count(self.last_template, what)

    def _count(self, template: str, what: str) -> None:
        counts = self.outcome.templates.setdefault(template, {"sent": 0, **dict.fromkeys(RESPONSES, 0)})
        counts[what] = counts.get(what, 0) + 1


_COMPLAINT_KINDS = (
    TimelineKind.COMPLAINT_OPENED,
    TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE,
    TimelineKind.COMPLAINT_RESOLUTION_OVERDUE,
)
