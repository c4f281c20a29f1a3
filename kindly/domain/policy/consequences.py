"""What being overdue really costs the customer, as the lender's contract and practice make it true.

A reminder after the due date may state a consequence only when it is a fact: penalty interest at the
rate the contract sets, or the lender's reporting of overdue payments to the credit bureau. The facts are
part of the segment's contact policy (``ContactPolicy.consequences``), so a compliance officer signs them
off with the rest of the policy, and the messages state them only in the approved wording
(``kindly.domain.messages.consequences``). A fact left out is never stated: the content check refuses a
message that claims it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, field_validator

from kindly.domain.contract import SUPPORTED_LOCALES, Locale

__all__ = ["NO_CONSEQUENCES", "RATE_MAX_CHARS", "Consequences", "PenaltyInterest"]

RATE_MAX_CHARS: Mapping[str, int] = MappingProxyType({"zh-CN": 10, "en-US": 20})
"""The longest rate wording per locale (``日利率0.05%``, ``0.05% a day``): it goes into every post-due
reminder, which must still fit in its SMS parts, and a Chinese part holds 67 characters where a Latin
one holds 153."""


def _one_line(value: str) -> str:
    """A rate is shown inside a sentence: one run of words, no template syntax."""
    if any(char in value for char in "{}\r\n\t"):
        raise ValueError("must be one line of plain text, without braces")
    return " ".join(value.split())


RateWording = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=max(RATE_MAX_CHARS.values())),
    AfterValidator(_one_line),
]


class PenaltyInterest(BaseModel):
    """Penalty interest (罚息) the contract charges on overdue amounts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: dict[Locale, RateWording]
    """The rate as the contract words it, in every supported locale: ``{"zh-CN": "日利率0.05%",
    "en-US": "0.05% a day"}``. It is shown as written, so it must be the contract's own figure."""

    @field_validator("rate")
    @classmethod
    def _every_locale(cls, rate: dict[Locale, str]) -> dict[Locale, str]:
        missing = [locale for locale in SUPPORTED_LOCALES if locale not in rate]
        if missing:
            raise ValueError(f"give the contract's wording in every locale; missing {', '.join(missing)}")
        for locale, wording in rate.items():
            if len(wording) > RATE_MAX_CHARS[locale]:
                raise ValueError(f"{locale}: {wording!r} is longer than {RATE_MAX_CHARS[locale]} characters")
        return rate


class Consequences(BaseModel):
    """The consequences of being overdue that are true for a segment; by default none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    penalty_interest: PenaltyInterest | None = None
    """The contract charges penalty interest on overdue amounts, at this rate; None: it does not."""
    reports_to_credit_bureau: bool = False
    """The lender reports overdue payments to the credit bureau (征信机构)."""

    @property
    def declared(self) -> bool:
        """Whether any consequence is a fact, so that a post-due reminder must state it."""
        return self.penalty_interest is not None or self.reports_to_credit_bureau

    def describe(self) -> str:
        """The facts in a few words, for the start-up check's messages."""
        facts = []
        if self.penalty_interest is not None:
            facts.append(f"penalty interest {self.penalty_interest.rate.get('en-US', '')}".rstrip())
        if self.reports_to_credit_bureau:
            facts.append("reports to the credit bureau")
        return ", ".join(facts) or "no consequences"


NO_CONSEQUENCES = Consequences()
"""A policy that declares none: nothing may be stated."""
