"""Complaints about how the lender collects (投诉), as their own case beside the account.

A complaint is not a dispute about the debt ("不是我的", "wrong amount"): it is about the lender's
conduct ("投诉", "I will report you", the regulator's hotline 12378). It is opened by the customer's
reply (its keywords are configurable per segment, ``ReplyKeywords.complaint``), by a note on the
console or by an API call, and it holds two deadlines counted in business days on the regime's
calendar (``kindly.domain.policy.business_days``): one to acknowledge it, one to resolve it. Automated
contact is held from the moment it opens until an operator resumes it after its resolution.

These are the messages that open, acknowledge and resolve one (the ``open_complaint``,
``acknowledge_complaint`` and ``resolve_complaint`` signals and updates) and the record the account's
state keeps of each. The workflow keeps nothing the customer wrote: a note is the operator's, and is
refused when it carries personal data (``personal_data_in``), so it can go to the audit log as typed.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

NOTE_MAX = 500


class ComplaintChannel(StrEnum):
    """How the complaint reached the lender."""

    SMS_REPLY = "sms_reply"
    """The customer's reply held a complaint keyword."""
    CONSOLE = "console"
    """A person of the lender recorded it on the console (a call, a letter, a visit)."""
    API = "api"
    """Another system of the lender (its complaint desk, the regulator's referrals) posted it."""


class ComplaintOutcome(StrEnum):
    UPHELD = "upheld"
    PARTLY_UPHELD = "partly_upheld"
    NOT_UPHELD = "not_upheld"
    WITHDRAWN = "withdrawn"


# What a note may not hold: a run of seven or more digits (a phone, ID card, bank card or account
# number, spaces and dashes allowed between digits), or an e-mail address. The customer's own name and
# number are checked against the account as well (``kindly.domain.complaint_effects``).
_DIGIT_RUN = re.compile(r"\d(?:[\s-]?\d){6,}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def personal_data_in(note: str, *, name: str = "", phone: str = "") -> str | None:
    """What personal data ``note`` seems to hold, in a few words, or None when it holds none."""
    if _DIGIT_RUN.search(note):
        return "a number of seven or more digits (a phone, ID or card number)"
    if _EMAIL.search(note):
        return "an e-mail address"
    folded = note.casefold()
    if name and name.casefold() in folded:
        return "the customer's name"
    digits = re.sub(r"\D", "", phone)
    if digits and digits[-7:] in re.sub(r"\D", "", note):
        return "the customer's phone number"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_pattern_data(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = value.strip()
    found = personal_data_in(cleaned)
    if found is not None:
        raise ValueError(f"must hold no personal data: it has {found}")
    return cleaned or None


class OpenComplaint(_Strict):
    """Record a complaint a person received (``open_complaint``). A reply holding a complaint keyword
    opens one by itself, with channel ``sms_reply``."""

    channel: ComplaintChannel = ComplaintChannel.API
    received_at: datetime | None = None
    """When the lender received it (with a UTC offset); now when left out. Its deadlines count from it."""
    note: str | None = Field(default=None, max_length=NOTE_MAX)
    """What the complaint is about, in the operator's words, without personal data."""

    @field_validator("channel")
    @classmethod
    def _by_a_person(cls, value: ComplaintChannel) -> ComplaintChannel:
        if value is ComplaintChannel.SMS_REPLY:
            raise ValueError(
                "sms_reply complaints are opened by the customer's reply itself: use console or api"
            )
        return value

    @field_validator("received_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a UTC offset, e.g. 2026-12-01T09:00:00+08:00")
        return value

    @field_validator("note")
    @classmethod
    def _note(cls, value: str | None) -> str | None:
        return _no_pattern_data(value)


class AcknowledgeComplaint(_Strict):
    """The lender told the customer it has the complaint (``acknowledge_complaint``)."""

    complaint: int = Field(ge=1)
    """The complaint's number on the account (1 for its first)."""
    note: str = Field(min_length=1, max_length=NOTE_MAX)
    """How and what the customer was told, without personal data."""

    @field_validator("note")
    @classmethod
    def _note(cls, value: str) -> str:
        cleaned = _no_pattern_data(value)
        if cleaned is None:
            raise ValueError("must not be blank")
        return cleaned


class ResolveComplaint(_Strict):
    """The lender's answer to the complaint (``resolve_complaint``); contact stays held until an operator
    resumes it."""

    complaint: int = Field(ge=1)
    outcome: ComplaintOutcome
    note: str = Field(min_length=1, max_length=NOTE_MAX)
    """What was found and done, without personal data."""

    @field_validator("note")
    @classmethod
    def _note(cls, value: str) -> str:
        cleaned = _no_pattern_data(value)
        if cleaned is None:
            raise ValueError("must not be blank")
        return cleaned


class Complaint(BaseModel):
    """One complaint as the account's state keeps it; every instant is UTC-aware."""

    number: int
    channel: ComplaintChannel
    received_at: datetime
    acknowledge_by: datetime
    resolve_by: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    outcome: ComplaintOutcome | None = None
    acknowledgement_overdue_at: datetime | None = None
    """When the workflow found it unacknowledged at its deadline and escalated it."""
    resolution_overdue_at: datetime | None = None
    """When the workflow found it unresolved at its deadline and escalated it."""

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def next_deadline(self) -> tuple[datetime, str] | None:
        """The next deadline the workflow must watch (``acknowledgement`` or ``resolution``), or None
        when both are met or already escalated."""
        if not self.is_open:
            return None
        if self.acknowledged_at is None and self.acknowledgement_overdue_at is None:
            return self.acknowledge_by, "acknowledgement"
        if self.resolution_overdue_at is None:
            return self.resolve_by, "resolution"
        return None
