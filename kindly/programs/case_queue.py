"""The specialist team's resolutions of a case, each reaching the account as updates before the case is
marked resolved, so that a case is never closed on an action the account refused.

A resolution decides what happens to the account next:

* ``settle`` and ``close`` end it;
* ``promise`` records the customer's promise and hands the account back to the automated cadence, which
  holds contact until the promised date and follows up a broken promise;
* ``pause`` holds all contact until a date, when the account comes back to the automated cadence;
* ``resume`` hands it back to the automated cadence at once.

Hand-backs need the 1.2 rules (``workflows.rules``); on an older run the account refuses them and the
case stays open, with the refusal shown to the specialist.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.client import Client

from kindly.domain.contract import AccountStatus, Close, Pause, PromiseToPay, Resume, Settle, SignalName
from kindly.domain.validation import describe_validation_error
from kindly.errors import ActionRefusedError, InvalidActionValueError
from kindly.programs.operations import act_on_account
from kindly.store.cases import CaseUnavailable, SpecialistCases

__all__ = ["CaseUnavailable", "Resolution", "ResolutionKind", "resolve_case"]

T = TypeVar("T")


class ResolutionKind(StrEnum):
    SETTLE = "settle"
    CLOSE = "close"
    PROMISE = "promise"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class Resolution:
    """What the specialist chose, with the values that choice needs (the others are None)."""

    kind: ResolutionKind
    amount: Decimal | None = None
    reference: str | None = None
    reason: str | None = None
    promise_date: date | None = None
    until: datetime | None = None

    def updates(self) -> list[tuple[SignalName, BaseModel]]:
        """The account's updates, in order; a missing or bad value is refused naming its field
        (``InvalidActionValueError``)."""
        try:
            return self._updates()
        except ValidationError as err:
            first = err.errors(include_url=False, include_input=False)[0]
            field = ".".join(str(part) for part in first["loc"]) or None
            raise InvalidActionValueError(describe_validation_error(err), field=field) from err

    def _updates(self) -> list[tuple[SignalName, BaseModel]]:
        if self.kind is ResolutionKind.SETTLE:
            return [
                (SignalName.SETTLE, Settle(amount=_required(self.amount, "amount"), reference=self._ref()))
            ]
        if self.kind is ResolutionKind.CLOSE:
            return [(SignalName.CLOSE, Close(reason=_required(self.reason, "reason")))]
        if self.kind is ResolutionKind.PROMISE:
            promise = PromiseToPay(date=_required(self.promise_date, "date"))
            return [(SignalName.PROMISE_TO_PAY, promise), (SignalName.RESUME, Resume())]
        if self.kind is ResolutionKind.PAUSE:
            until = _required(self.until, "until")
            return [(SignalName.PAUSE, Pause(reason=_required(self.reason, "reason"), until=until))]
        return [(SignalName.RESUME, Resume())]

    def describe(self) -> str:
        """The resolution as the case and the audit log keep it: no personal data, only the choice and
        its values."""
        details = {
            ResolutionKind.SETTLE: f"settle {self.amount} ({self.reference})",
            ResolutionKind.CLOSE: f"close: {self.reason}",
            ResolutionKind.PROMISE: f"promise by {self.promise_date}; back to automated contact",
            ResolutionKind.PAUSE: f"pause until {self.until}: {self.reason}",
            ResolutionKind.RESUME: "back to automated contact",
        }
        return details[self.kind]

    def _ref(self) -> str:
        return _required(self.reference, "reference")


async def resolve_case(
    cases: SpecialistCases,
    client: Client,
    case_id: int,
    specialist: str,
    resolution: Resolution,
    now: datetime,
) -> AccountStatus:
    """Apply ``resolution`` to the case's account, then mark the case resolved by ``specialist``.

    Raises ``CaseUnavailable`` for an unknown or already resolved case, and the account's refusal
    (``ActionRefusedError``) when it refuses an update: the case then stays open. A promise the account
    took before it refused the hand-back is said so in the refusal's message."""
    case = await asyncio.to_thread(cases.get, case_id)
    if case is None or case.resolved_at is not None or case.closed_reason is not None:
        raise CaseUnavailable(f"case {case_id} is not open")
    updates = resolution.updates()
    status: AccountStatus | None = None
    for done, (name, payload) in enumerate(updates):
        try:
            status = await act_on_account(client, case.account_id, name, payload)
        except ActionRefusedError as err:
            if done:
                raise type(err)(f"the promise is recorded, but {err}", field=err.field) from err
            raise
    assert status is not None
    await asyncio.to_thread(cases.resolve, case_id, specialist, resolution.describe(), now)
    return status


def _required(value: T | None, field: str) -> T:
    if value is None:
        raise InvalidActionValueError(f"{field}: required for this resolution", field=field)
    return value
