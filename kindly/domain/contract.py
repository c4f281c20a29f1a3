"""The public contract of an account workflow: its input, signals, queries and result.

Operators type these names into ``temporal workflow signal --name …`` and other systems post these
shapes, so the names and fields here are public API. The workflow, the worker, the CLI and the HTTP
API all import them from this one module.

Every model validates its input and names the offending field in its error, so that a bad start or
a bad signal is rejected with a clear message instead of wedging a workflow.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kindly.domain.complaints import AcknowledgeComplaint, Complaint, OpenComplaint, ResolveComplaint
from kindly.domain.plans import InstalmentPlan, SelfServiceChoice
from kindly.domain.vocabulary import TemplateName as TemplateName
from kindly.domain.vocabulary import TimelineKind as TimelineKind

WORKFLOW_TYPE = "OverdueAccountWorkflow"
WORKFLOW_ID_PREFIX = "overdue-"


def workflow_id_for(account_id: str) -> str:
    """The one workflow id an account may have: the key that makes starts idempotent."""
    return f"{WORKFLOW_ID_PREFIX}{account_id}"


class SignalName(StrEnum):
    """Signal names as operators type them (``temporal workflow signal --name repayment``)."""

    REPAYMENT = "repayment"
    CUSTOMER_REPLY = "customer_reply"
    PAUSE = "pause"
    RESUME = "resume"
    SETTLE = "settle"
    CLOSE = "close"
    PROMISE_TO_PAY = "promise_to_pay"
    CALL_OUTCOME = "call_outcome"
    UPDATE_CONTACT = "update_contact"
    SMS_UNDELIVERABLE = "sms_undeliverable"
    REFRESH_POLICY = "refresh_policy"
    SELF_SERVICE = "self_service"
    """What the customer chose on the self-service page (an update only: ``kindly.domain.plans``)."""
    OPEN_COMPLAINT = "open_complaint"
    """A complaint about how the lender collects, received by a person (console, API)."""
    ACKNOWLEDGE_COMPLAINT = "acknowledge_complaint"
    RESOLVE_COMPLAINT = "resolve_complaint"


UPDATE_NAMES: tuple[SignalName, ...] = (
    SignalName.PAUSE,
    SignalName.RESUME,
    SignalName.SETTLE,
    SignalName.CLOSE,
    SignalName.PROMISE_TO_PAY,
    SignalName.CALL_OUTCOME,
    SignalName.REPAYMENT,
    SignalName.UPDATE_CONTACT,
    SignalName.REFRESH_POLICY,
    SignalName.SELF_SERVICE,
    SignalName.OPEN_COMPLAINT,
    SignalName.ACKNOWLEDGE_COMPLAINT,
    SignalName.RESOLVE_COMPLAINT,
)
"""The operator actions that are also workflow updates, under the signal's name and payload: an update
is validated before anything is written and answers with the account's new status (or why not)."""

ACTION_REFUSED = "ActionRefused"
"""The ``ApplicationError`` type of a refused update; its details are ``[kind, field]``, kind
``conflict`` (the account's state) or ``invalid`` (a value; ``field`` names it, or is null)."""


class QueryName(StrEnum):
    STATUS = "status"
    TIMELINE = "timeline"
    SELF_SERVICE = "self_service"
    """What the customer's self-service page may offer now (``kindly.domain.plans.SelfServiceOffer``)."""


class Stage(StrEnum):
    PRE_DUE = "pre_due"
    DUE = "due"
    OVERDUE = "overdue"
    PROMISE = "promise"
    PAUSED = "paused"
    PHONE = "phone"
    SPECIALIST = "specialist"
    REPAID = "repaid"
    SETTLED = "settled"
    CLOSED = "closed"


class Outcome(StrEnum):
    REPAID = "repaid"
    SETTLED = "settled"
    CLOSED = "closed"


Locale = Literal["zh-CN", "en-US"]
SUPPORTED_LOCALES: tuple[str, ...] = ("zh-CN", "en-US")

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

Money = Annotated[Decimal, Field(max_digits=18, decimal_places=2)]


def _check_phone(value: str) -> str:
    cleaned = value.strip()
    if not _E164.fullmatch(cleaned):
        raise ValueError("must be an E.164 number such as +8613800138000")
    return cleaned


def _check_timezone(value: str) -> str:
    if value == "localtime":
        # Resolves to the worker machine's own zone: not a customer's zone, and not the same
        # on every worker.
        raise ValueError("must be an IANA time zone name such as Asia/Shanghai, not 'localtime'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:
        # OSError: a key naming a directory of the database ("Asia") or an unreadable file.
        raise ValueError(f"unknown IANA time zone {value[:64]!r}") from err
    return value


class _Message(BaseModel):
    """Base of every contract message: unknown fields are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountInput(_Message):
    """What starts an account's workflow (also one row of an import file)."""

    account_id: str
    customer_name: str = Field(min_length=1, max_length=200)
    phone: str
    timezone: str
    locale: Locale
    amount_due: Money = Field(gt=0)
    currency: str = "CNY"
    due_date: date
    segment: str = Field(default="standard", min_length=1, max_length=64)
    region: str | None = None
    """Where the customer lives, as the lender codes it (a province code such as ``GD`` or ``440000``):
    it selects the region's message variants. Upper-cased; no personal data."""
    birthday: date | None = None
    # The customer's own stated window ("not before 10:00"), local time; it only ever narrows.
    contact_after: time | None = None
    contact_before: time | None = None

    @field_validator("account_id")
    @classmethod
    def _account_id(cls, value: str) -> str:
        if not _ACCOUNT_ID.fullmatch(value):
            raise ValueError("must be 1-64 characters of letters, digits, '.', '_' or '-'")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return _check_phone(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        cleaned = value.strip().upper()
        if not _REGION.fullmatch(cleaned):
            raise ValueError("must be 1-16 letters, digits, '_' or '-', such as GD or 440000")
        return cleaned

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.fullmatch(value):
            raise ValueError("must be a three-letter ISO 4217 code such as CNY")
        return value


# --- signals -------------------------------------------------------------------------------------


class Repayment(_Message):
    amount: Money = Field(gt=0)
    reference: str = Field(min_length=1, max_length=128)


class CustomerReply(_Message):
    text: str = Field(max_length=1600)


class Pause(_Message):
    reason: str = Field(min_length=1, max_length=500)
    until: datetime | None = None

    @field_validator("until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a UTC offset, e.g. 2026-12-01T09:00:00+08:00")
        return value


class Resume(_Message):
    pass


class RefreshPolicy(_Message):
    """Take the segment's policy as the workers' policy file now says (an account keeps the policy it
    started with until told): how a policy change rolls out to accounts in flight."""

    reason: str | None = Field(default=None, max_length=500)


class Settle(_Message):
    amount: Money = Field(ge=0)
    reference: str = Field(min_length=1, max_length=128)


class Close(_Message):
    reason: str = Field(min_length=1, max_length=500)


class PromiseToPay(_Message):
    date: dt.date


class CallOutcomeKind(StrEnum):
    REACHED = "reached"
    NO_ANSWER = "no_answer"
    PROMISE_TO_PAY = "promise_to_pay"
    WRONG_NUMBER = "wrong_number"
    REFUSED = "refused"
    CALL_BACK = "call_back"
    """The customer asked to be called back at a time (``call_back_at``)."""


class CallOutcome(_Message):
    outcome: CallOutcomeKind
    promise_date: date | None = None
    call_back_at: datetime | None = None

    @field_validator("call_back_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a UTC offset, e.g. 2026-12-01T15:00:00+08:00")
        return value


class UpdateContact(_Message):
    phone: str | None = None
    timezone: str | None = None
    locale: Locale | None = None
    contact_after: time | None = None
    contact_before: time | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else _check_phone(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)


class SmsUndeliverable(_Message):
    """The carrier says the number cannot receive SMS: stop texting, go on by phone."""

    reason: str = Field(min_length=1, max_length=200)


SIGNAL_MODELS: dict[SignalName, type[BaseModel]] = {
    SignalName.REPAYMENT: Repayment,
    SignalName.CUSTOMER_REPLY: CustomerReply,
    SignalName.PAUSE: Pause,
    SignalName.RESUME: Resume,
    SignalName.SETTLE: Settle,
    SignalName.CLOSE: Close,
    SignalName.PROMISE_TO_PAY: PromiseToPay,
    SignalName.CALL_OUTCOME: CallOutcome,
    SignalName.UPDATE_CONTACT: UpdateContact,
    SignalName.SMS_UNDELIVERABLE: SmsUndeliverable,
    SignalName.REFRESH_POLICY: RefreshPolicy,
    SignalName.SELF_SERVICE: SelfServiceChoice,
    SignalName.OPEN_COMPLAINT: OpenComplaint,
    SignalName.ACKNOWLEDGE_COMPLAINT: AcknowledgeComplaint,
    SignalName.RESOLVE_COMPLAINT: ResolveComplaint,
}


# --- queries and result --------------------------------------------------------------------------


class NextStep(BaseModel):
    """What the account's plan does next: ``sms`` (a reminder, with the template it would use),
    ``service_sms`` (a reply the customer asked for), ``call``, ``specialist`` or ``resume`` (a pause
    runs out). ``waiting_for`` names what holds it back when it has no moment yet (``no_calendar``:
    no holiday data for its year)."""

    kind: str
    template: TemplateName | None = None
    waiting_for: str | None = None


class AccountStatus(BaseModel):
    """Where an account stands. Instants are ISO-8601 in the customer's UTC offset; amounts are
    decimal strings with two places, in ``currency``."""

    account_id: str
    stage: Stage
    amount_due: Decimal
    amount_collected: Decimal = Decimal("0.00")
    currency: str = "CNY"
    sms_sent: int
    unanswered_sms: int
    next_touchpoint_at: datetime | None
    """Null when nothing is planned (paused without end, with the specialists, waiting) or ended."""
    next_step: NextStep | None = None
    paused: bool
    paused_until: datetime | None = None
    promise_date: date | None = None
    opted_out: bool = False
    escalation: Stage | None = None
    """``phone`` or ``specialist`` once the account has left the SMS cadence."""
    plan: InstalmentPlan | None = None
    """The instalment plan the customer chose, with what is paid of each instalment and its status."""
    complaints: list[Complaint] = []
    """The account's complaints, open and resolved, with their deadlines (UTC)."""
    contact_held_for_complaint: bool = False
    """Automated contact is held for a complaint: until an operator resumes it after its resolution."""


class TimelineEntry(BaseModel):
    """One decision; ``at`` is ISO-8601 with the customer's UTC offset. Never personal data."""

    at: str
    kind: TimelineKind
    detail: str


class AccountResult(BaseModel):
    outcome: Outcome
    amount_collected: Decimal
