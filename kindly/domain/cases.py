"""The kinds of case the specialist team works, and which one an account's hand-off is.

The team's queue is sorted by kind because each asks for different work: hardship for a plan or a pause,
a dispute for the loan's papers, a wrong number for a new contact, a refusal for a firmer conversation,
an undeliverable number for tracing, and an account no one could reach for another try by a person.
"""

from __future__ import annotations

from enum import StrEnum

from kindly.domain.state import AccountState


class CaseKind(StrEnum):
    HARDSHIP = "hardship"
    DISPUTE = "dispute"
    WRONG_NUMBER = "wrong_number"
    REFUSED = "refused"
    UNDELIVERABLE = "undeliverable"
    NO_CONTACT = "no_contact"
    """SMS and calls went unanswered, or the segment routes such accounts to specialists."""


_BY_REASON = (
    ("customer reported hardship", CaseKind.HARDSHIP),
    ("customer reported dispute", CaseKind.DISPUTE),
    ("call outcome wrong_number", CaseKind.WRONG_NUMBER),
    ("call outcome refused", CaseKind.REFUSED),
)


def case_kind(state: AccountState) -> CaseKind:
    """The case an account handed to the specialists is, from why it was handed over."""
    reason = state.specialist_reason or ""
    for prefix, kind in _BY_REASON:
        if reason.startswith(prefix):
            return kind
    if state.sms_undeliverable:
        return CaseKind.UNDELIVERABLE
    return CaseKind.NO_CONTACT
