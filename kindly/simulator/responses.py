"""What customers and the phone team do after a touch: the simulator's response model.

Per SMS the model gives the probabilities of seven responses, mutually exclusive (the rest is silence): a
reply, a partial payment, a full payment, a promise to pay, a STOP, and a reply that reports hardship or
disputes the debt (both hand the account to the specialists). They vary by segment, by the
account's days-past-due bucket when the SMS goes (the outcome reports' buckets) and by template; the most
specific rule that matches wins, the ``default`` answers the rest. Per call task the model gives the
outcome the phone team records, some hours after the task is made.

The model is data: a JSON file (``load_response_model``), or estimated from the audit log
(``kindly.simulator.observed``). Every probability is checked, and a bad file is refused naming the field.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kindly.analytics.reports import BUCKETS
from kindly.domain.contract import TemplateName
from kindly.domain.validation import describe_validation_error
from kindly.errors import SimulationInputError

Probability = float


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmsResponse(StrEnum):
    """What a customer does after an SMS, at most one per SMS."""

    REPLY = "reply"
    PARTIAL_PAYMENT = "partial_payment"
    FULL_PAYMENT = "full_payment"
    PROMISE = "promise"
    STOP = "stop"
    HARDSHIP = "hardship"
    DISPUTE = "dispute"


class CallResult(StrEnum):
    """The outcome the phone team records for a call task (``none``: it records none)."""

    REACHED = "reached"
    NO_ANSWER = "no_answer"
    PROMISE = "promise"
    WRONG_NUMBER = "wrong_number"
    REFUSED = "refused"


class TouchOdds(_Strict):
    """The probabilities of each response to one SMS; their sum is at most 1."""

    reply: Probability = Field(default=0.0, ge=0, le=1)
    partial_payment: Probability = Field(default=0.0, ge=0, le=1)
    full_payment: Probability = Field(default=0.0, ge=0, le=1)
    promise: Probability = Field(default=0.0, ge=0, le=1)
    stop: Probability = Field(default=0.0, ge=0, le=1)
    hardship: Probability = Field(default=0.0, ge=0, le=1)
    dispute: Probability = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _at_most_one(self) -> TouchOdds:
        total = sum(self.odds().values())
        if total > 1 + 1e-9:
            raise ValueError(f"the probabilities add up to {total:.4f}; at most 1")
        return self

    def odds(self) -> dict[SmsResponse, float]:
        return {response: float(getattr(self, response.value)) for response in SmsResponse}


class TouchRule(TouchOdds):
    """The odds for the SMS that match every key the rule gives (a key left out matches all)."""

    segment: str | None = None
    dpd: str | None = None
    """A days-past-due bucket of the outcome reports: ``current``, ``1-30``, ``31-60``, ``61-90``, ``90+``."""
    template: TemplateName | None = None

    @field_validator("dpd")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None and value not in BUCKETS:
            raise ValueError(f"must be one of {', '.join(BUCKETS)}")
        return value

    @property
    def keys(self) -> int:
        """How specific the rule is: the number of keys it gives."""
        return sum(value is not None for value in (self.segment, self.dpd, self.template))

    def matches(self, segment: str, dpd: str, template: TemplateName) -> bool:
        return (
            self.segment in (None, segment) and self.dpd in (None, dpd) and self.template in (None, template)
        )


class CallOdds(_Strict):
    """The phone team's recorded outcome of a call task; the rest records nothing, so the account waits
    the policy's ``call_outcome_wait_hours`` and calls again."""

    reached: Probability = Field(default=0.3, ge=0, le=1)
    no_answer: Probability = Field(default=0.5, ge=0, le=1)
    promise: Probability = Field(default=0.1, ge=0, le=1)
    wrong_number: Probability = Field(default=0.03, ge=0, le=1)
    refused: Probability = Field(default=0.02, ge=0, le=1)
    recorded_after_hours: float = Field(default=2.0, gt=0, le=24 * 7)
    """How long after the task is made its outcome is recorded."""

    @model_validator(mode="after")
    def _at_most_one(self) -> CallOdds:
        total = sum(self.odds().values())
        if total > 1 + 1e-9:
            raise ValueError(f"the probabilities add up to {total:.4f}; at most 1")
        return self

    def odds(self) -> dict[CallResult, float]:
        return {result: float(getattr(self, result.value)) for result in CallResult}


class ResponseModel(_Strict):
    """The whole model. Defaults are modest figures for a first look; lenders use their own or
    ``observed``."""

    default: TouchOdds = Field(
        default_factory=lambda: TouchOdds(
            reply=0.04,
            partial_payment=0.02,
            full_payment=0.08,
            promise=0.03,
            stop=0.005,
            hardship=0.003,
            dispute=0.002,
        )
    )
    rules: list[TouchRule] = Field(default_factory=list)
    calls: CallOdds = Field(default_factory=CallOdds)
    response_after_hours: float = Field(default=6.0, gt=0, le=24 * 14)
    """The mean delay from an SMS to the customer's response (exponentially distributed)."""
    partial_share: float = Field(default=0.3, gt=0, lt=1)
    """The share of what is still owed that a partial payment pays."""
    promise_days: int = Field(default=5, ge=1, le=60)
    """How far ahead customers promise to pay."""
    promise_kept: Probability = Field(default=0.6, ge=0, le=1)
    """The chance a promise ends in a full payment on its date."""

    def odds_for(self, segment: str, dpd: str, template: TemplateName) -> TouchOdds:
        """The most specific matching rule (the first of equally specific ones), else the default."""
        best: TouchRule | None = None
        for rule in self.rules:
            if rule.matches(segment, dpd, template) and (best is None or rule.keys > best.keys):
                best = rule
        return self.default if best is None else best


def dpd_bucket(days_past_due: int) -> str:
    """The outcome reports' bucket of an account ``days_past_due`` days late (0 or less: current)."""
    if days_past_due <= 0:
        return BUCKETS[0]
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "90+"


def parse_response_model(raw: Any, *, source: str) -> ResponseModel:
    """The model from a JSON value; ``SimulationInputError`` names ``source`` and each bad field."""
    try:
        return ResponseModel.model_validate(raw)
    except ValidationError as err:
        why = describe_validation_error(err).removeprefix("payload: ")
        raise SimulationInputError(f"response model {source}: {why}") from None


def load_response_model(path: Path) -> ResponseModel:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SimulationInputError(f"response model {path}: {err}") from err
    return parse_response_model(raw, source=str(path))
