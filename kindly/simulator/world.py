"""What happens to an account from outside: the customer's responses and the phone team's outcomes.

The account loop (``kindly.simulator.account``) asks the world after every reminder and every call task
what follows, and gets ``Happening``s: signals at instants, exactly as the workflow would receive them.
``ModelWorld`` draws them from a response model with the account's own seeded random stream;
``ScriptedWorld`` replays a fixed list (the fidelity test drives the real workflow with the same list).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from kindly.domain.contract import SignalName, TemplateName
from kindly.domain.policy.schedule import local_date
from kindly.domain.state import AccountState
from kindly.simulator.responses import CallResult, ResponseModel, SmsResponse, dpd_bucket

Payload = dict[str, Any]
PayloadOf = Callable[[AccountState], Payload | None]
"""A payload made when the signal arrives (a full payment pays what is owed then); None: nothing comes."""

PROMISED_PAYMENT_AT = time(12, 0)
"""When, on the promised day, a kept promise's payment arrives (local time)."""
CENT = Decimal("0.01")
_Outcome = TypeVar("_Outcome")


@dataclass(frozen=True, slots=True)
class Happening:
    at: datetime
    signal: SignalName
    payload: Payload | PayloadOf
    response: str = ""
    """What the world meant by it (``full_payment``, ``stop``, ``no_answer``...), for the figures."""

    def payload_for(self, state: AccountState) -> Payload | None:
        return self.payload(state) if callable(self.payload) else self.payload


class World(Protocol):
    def opening(self) -> Sequence[Happening]:
        """What is known to happen whatever the account does (a script)."""
        ...

    def after_sms(self, state: AccountState, template: TemplateName, at: datetime) -> Sequence[Happening]: ...

    def after_call(self, state: AccountState, at: datetime) -> Sequence[Happening]: ...


@dataclass
class ScriptedWorld:
    """A fixed list of signals; reminders and call tasks change nothing of it."""

    happenings: Sequence[Happening] = ()

    def opening(self) -> Sequence[Happening]:
        return self.happenings

    def after_sms(self, state: AccountState, template: TemplateName, at: datetime) -> Sequence[Happening]:
        return ()

    def after_call(self, state: AccountState, at: datetime) -> Sequence[Happening]:
        return ()


@dataclass
class ModelWorld:
    """Responses drawn from ``model`` with ``rng``, the account's own stream (seed and account id)."""

    model: ResponseModel
    rng: random.Random
    _payments: int = field(default=0)

    def opening(self) -> Sequence[Happening]:
        return ()

    def after_sms(self, state: AccountState, template: TemplateName, at: datetime) -> Sequence[Happening]:
        dpd = max((local_date(state, at) - state.account.due_date).days, 0)
        odds = self.model.odds_for(state.account.segment, dpd_bucket(dpd), template).odds()
        response = _draw(self.rng, odds)
        if response is None:
            return ()
        delay = timedelta(hours=self.rng.expovariate(1 / self.model.response_after_hours))
        when = at + delay
        keywords = state.policy.reply_keywords
        if response is SmsResponse.REPLY:
            return (Happening(when, SignalName.CUSTOMER_REPLY, {"text": "OK"}, response),)
        if response in (SmsResponse.STOP, SmsResponse.HARDSHIP, SmsResponse.DISPUTE):
            words = {
                SmsResponse.STOP: keywords.opt_out,
                SmsResponse.HARDSHIP: keywords.hardship,
                SmsResponse.DISPUTE: keywords.dispute,
            }[response]
            return (Happening(when, SignalName.CUSTOMER_REPLY, {"text": words[0]}, response),)
        if response is SmsResponse.FULL_PAYMENT:
            return (self._payment(when, None),)
        if response is SmsResponse.PARTIAL_PAYMENT:
            return (self._payment(when, self.model.partial_share),)
        return self._promise(state, when, SignalName.PROMISE_TO_PAY, "date", {})

    def after_call(self, state: AccountState, at: datetime) -> Sequence[Happening]:
        result = _draw(self.rng, self.model.calls.odds())
        if result is None:
            return ()
        when = at + timedelta(hours=self.model.calls.recorded_after_hours)
        if result is CallResult.PROMISE:
            extra = {"outcome": "promise_to_pay"}
            return self._promise(state, when, SignalName.CALL_OUTCOME, "promise_date", extra)
        return (Happening(when, SignalName.CALL_OUTCOME, {"outcome": result.value}, result),)

    def _payment(self, when: datetime, share: float | None) -> Happening:
        self._payments += 1
        reference = f"sim-{self._payments}"

        def payload(state: AccountState) -> Payload | None:
            owed = state.amount_due
            amount = owed if share is None else (owed * Decimal(str(share))).quantize(CENT, ROUND_DOWN)
            if amount <= 0:
                return None
            return {"amount": str(amount), "reference": reference}

        return Happening(when, SignalName.REPAYMENT, payload, "full_payment" if share is None else "partial")

    def _promise(
        self, state: AccountState, when: datetime, signal: SignalName, key: str, extra: Payload
    ) -> tuple[Happening, ...]:
        promised = local_date(state, when) + timedelta(days=self.model.promise_days)
        promise = Happening(when, signal, {**extra, key: promised.isoformat()}, "promise")
        if self.rng.random() >= self.model.promise_kept:
            return (promise,)
        zone = ZoneInfo(state.account.timezone)
        paid_at = datetime.combine(promised, PROMISED_PAYMENT_AT, zone)
        return promise, self._payment(paid_at, None)


def _draw(rng: random.Random, odds: dict[_Outcome, float]) -> _Outcome | None:
    """One outcome by its probability, or None (the rest)."""
    point = rng.random()
    for outcome, chance in odds.items():
        if point < chance:
            return outcome
        point -= chance
    return None
