"""What a simulation counts, day by day: plain counters that shards fill and the run adds up.

A day is a date in the report's time zone; a minute is a minute of that day, for the gateway's peak.
Money is kept per currency as exact decimals. A ``Tally`` holds no account, only counts, so a shard's
tally stays small however many accounts it runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

CAP_REASONS = frozenset({"daily_cap", "weekly_cap", "call_cap", "after_conversation"})
"""Deferrals that are the contact caps at work (a collision), rather than the calendar or the clock."""


@dataclass(slots=True)
class DayTally:
    sms: Counter[str] = field(default_factory=Counter)
    """Sent by template."""
    sms_segments: int = 0
    per_minute: Counter[int] = field(default_factory=Counter)
    """Sends by minute of the day (0-1439)."""
    call_tasks: int = 0
    specialist_handoffs: int = 0
    deferrals: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    promises: int = 0
    opt_outs: int = 0
    cures: int = 0
    collected: Counter[str] = field(default_factory=Counter)
    """Per currency, in cents."""
    started: int = 0
    ended: int = 0

    def add(self, other: DayTally) -> None:
        self.sms.update(other.sms)
        self.sms_segments += other.sms_segments
        self.per_minute.update(other.per_minute)
        self.call_tasks += other.call_tasks
        self.specialist_handoffs += other.specialist_handoffs
        self.deferrals.update(other.deferrals)
        self.replies += other.replies
        self.promises += other.promises
        self.opt_outs += other.opt_outs
        self.cures += other.cures
        self.collected.update(other.collected)
        self.started += other.started
        self.ended += other.ended


@dataclass(slots=True)
class ArmTally:
    """One experiment arm's totals (or the whole portfolio's, without an experiment)."""

    accounts: int = 0
    sms: int = 0
    sms_segments: int = 0
    call_tasks: int = 0
    specialist_handoffs: int = 0
    cures: int = 0
    opt_outs: int = 0
    collected: Counter[str] = field(default_factory=Counter)

    def add(self, other: ArmTally) -> None:
        self.accounts += other.accounts
        self.sms += other.sms
        self.sms_segments += other.sms_segments
        self.call_tasks += other.call_tasks
        self.specialist_handoffs += other.specialist_handoffs
        self.cures += other.cures
        self.opt_outs += other.opt_outs
        self.collected.update(other.collected)


@dataclass(slots=True)
class Tally:
    days: dict[date, DayTally] = field(default_factory=dict)
    arms: dict[str, ArmTally] = field(default_factory=dict)
    accounts: int = 0

    def day(self, day: date) -> DayTally:
        found = self.days.get(day)
        if found is None:
            found = self.days[day] = DayTally()
        return found

    def arm(self, name: str) -> ArmTally:
        found = self.arms.get(name)
        if found is None:
            found = self.arms[name] = ArmTally()
        return found

    def add(self, other: Tally) -> None:
        self.accounts += other.accounts
        for day, day_counts in other.days.items():
            self.day(day).add(day_counts)
        for name, arm_counts in other.arms.items():
            self.arm(name).add(arm_counts)


def cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())
