"""A synthetic book of accounts, for a simulation without a portfolio file.

The book is made from the seed alone, account by account (account ``n`` is the same whatever the
book's size), so that a shard can make its own accounts instead of receiving them. Its due dates spread
from two weeks before the start to the last simulated day, so that the run sees a backlog and a steady
flow of new dues; its segments are the policy file's (or ``standard`` and ``gentle``), drawn with equal
chances (not in turn, which would follow the dealing of accounts to workers), each account in
its regime's time zone and language.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from kindly.domain.contract import AccountInput
from kindly.domain.policy.model import ContactPolicy
from kindly.errors import SimulationInputError

BACKLOG_DAYS = 14
"""How long before the start the earliest synthetic due date falls."""
BIRTHDAY_SHARE = 0.8
"""The share of synthetic accounts whose birthday is known (and avoided, where the policy says so)."""
SYNTHETIC_SEGMENTS = ("standard", "gentle")
ZONES = {"cn": ("Asia/Shanghai",), "us": ("America/New_York", "America/Chicago", "America/Los_Angeles")}


@dataclass(frozen=True)
class SyntheticBook:
    """``size`` accounts made from ``seed``, due between ``start - 14 days`` and ``start + days - 1``."""

    size: int
    seed: int
    start: date
    days: int
    segments: tuple[str, ...]
    regimes: Mapping[str, str]
    """Each segment's regime: its accounts' time zones, language and phone numbers follow it."""

    def account(self, number: int) -> AccountInput:
        rng = random.Random(f"{self.seed}/synthetic/{number}")
        segment = rng.choice(self.segments)
        regime = self.regimes.get(segment, "cn")
        due = self.start + timedelta(days=rng.randrange(-BACKLOG_DAYS, self.days))
        amount = Decimal(round(rng.lognormvariate(7.6, 0.8), 2)).quantize(Decimal("0.01"))
        birthday = None
        if rng.random() < BIRTHDAY_SHARE:
            birthday = date(1960 + rng.randrange(45), 1, 1) + timedelta(days=rng.randrange(365))
        return AccountInput(
            account_id=f"SIM-{number:07d}",
            customer_name="Simulated",
            phone=f"+1{2125550000 + number % 10_000:010d}"
            if regime == "us"
            else f"+86138{number % 100_000_000:08d}",
            timezone=rng.choice(ZONES.get(regime, ZONES["cn"])),
            locale="en-US" if regime == "us" else "zh-CN",
            amount_due=max(amount, Decimal("50.00")),
            currency="USD" if regime == "us" else "CNY",
            due_date=due,
            segment=segment,
            birthday=birthday,
        )


def synthetic_book(
    size: int,
    *,
    seed: int,
    start: date,
    days: int,
    policies: dict[str, ContactPolicy],
    from_file: Sequence[str],
) -> SyntheticBook:
    """A book over the segments a policy file defines (``from_file``), or ``standard`` and ``gentle``."""
    if size < 1:
        raise SimulationInputError("--synthetic: must be at least 1")
    segments = tuple(from_file) or SYNTHETIC_SEGMENTS
    regimes = {segment: policies[segment].regime for segment in segments if segment in policies}
    return SyntheticBook(size, seed, start, days, segments, regimes)
