"""Where an account's simulated run leaves its marks: the shard's tally, counted by the report's days, and
for the fidelity test the account's trace of sends and hand-offs at their instants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from kindly.simulator.tally import ArmTally, Tally, cents


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One action the account took: ``sms`` (with its template), ``call_task`` or ``specialist``."""

    kind: str
    at: datetime
    template: str | None = None


@dataclass
class Recorder:
    tally: Tally
    zone: ZoneInfo
    arm: str
    currency: str
    trace: list[TraceEntry] | None = None
    _arm: ArmTally = field(init=False)

    def __post_init__(self) -> None:
        self._arm = self.tally.arm(self.arm)
        self._arm.accounts += 1
        self.tally.accounts += 1

    def _day(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def started(self, at: datetime) -> None:
        self.tally.day(self._day(at)).started += 1

    def ended(self, at: datetime) -> None:
        self.tally.day(self._day(at)).ended += 1

    def sms(self, at: datetime, template: str, segments: int) -> None:
        local = at.astimezone(self.zone)
        day = self.tally.day(local.date())
        day.sms[template] += 1
        day.sms_segments += segments
        day.per_minute[local.hour * 60 + local.minute] += 1
        self._arm.sms += 1
        self._arm.sms_segments += segments
        if self.trace is not None:
            self.trace.append(TraceEntry("sms", at, template))

    def call_task(self, at: datetime) -> None:
        self.tally.day(self._day(at)).call_tasks += 1
        self._arm.call_tasks += 1
        if self.trace is not None:
            self.trace.append(TraceEntry("call_task", at))

    def specialist(self, at: datetime) -> None:
        self.tally.day(self._day(at)).specialist_handoffs += 1
        self._arm.specialist_handoffs += 1
        if self.trace is not None:
            self.trace.append(TraceEntry("specialist", at))

    def deferred(self, day: date, reason: str) -> None:
        self.tally.day(day).deferrals[reason] += 1

    def response(self, at: datetime, what: str) -> None:
        day = self.tally.day(self._day(at))
        if what in ("reply", "hardship", "dispute"):
            day.replies += 1
        elif what == "promise":
            day.promises += 1
        elif what == "stop":
            day.replies += 1
            day.opt_outs += 1
            self._arm.opt_outs += 1

    def collected(self, at: datetime, amount: Decimal, *, cured: bool) -> None:
        day = self.tally.day(self._day(at))
        day.collected[self.currency] += cents(amount)
        self._arm.collected[self.currency] += cents(amount)
        if cured:
            day.cures += 1
            self._arm.cures += 1
