"""A simulation's figures as people read them: per day and in total, with the costs and the staffing
they imply, and two runs side by side.

Costs and hours are derived from the counts with the run's prices: an SMS costs ``sms_price`` per billed
part, a call task takes ``handle_minutes`` of an agent. The gateway's rate is per minute: a minute with
more sends than it is a minute over the rate (the worker's rate limit spreads them into the next
minutes, late). Deferrals are the touches put off, each once per reason, on the first day that reason
passed over; the contact caps' share of them (``cap_collisions``) apart.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from pydantic import BaseModel

from kindly.simulator.tally import CAP_REASONS, ArmTally, DayTally, Tally

CENTS = Decimal("0.01")


class Prices(BaseModel):
    sms_price: Decimal
    """Per billed SMS part."""
    handle_minutes: float
    """An agent's time per call task."""
    gateway_per_minute: int
    """The gateway's accepted SMS per minute."""


class DayFigures(BaseModel):
    day: date
    sms: int
    sms_by_template: dict[str, int]
    sms_parts: int
    sms_cost: Decimal
    peak_per_minute: int
    minutes_over_rate: int
    call_tasks: int
    agent_hours: float
    specialist_handoffs: int
    deferrals: dict[str, int]
    cap_collisions: int
    replies: int
    promises: int
    opt_outs: int
    cures: int
    collected: dict[str, Decimal]
    open_accounts: int
    """Accounts still open at the day's end."""


class ArmFigures(BaseModel):
    arm: str
    accounts: int
    sms: int
    sms_parts: int
    sms_cost: Decimal
    call_tasks: int
    agent_hours: float
    specialist_handoffs: int
    opt_outs: int
    cures: int
    cure_rate: float
    collected: dict[str, Decimal]


class SimulationReport(BaseModel):
    label: str
    """What was simulated: the policy file, or the built-in policies."""
    accounts: int
    start: date
    days: int
    seed: int
    timezone: str
    prices: Prices
    total: ArmFigures
    sms_by_template: dict[str, int]
    peak_per_minute: int
    minutes_over_rate: int
    deferrals: dict[str, int]
    cap_collisions: int
    arms: list[ArmFigures]
    by_day: list[DayFigures]


class DayDifference(BaseModel):
    day: date
    sms: int
    sms_cost: Decimal
    call_tasks: int
    agent_hours: float
    specialist_handoffs: int
    cures: int


class Comparison(BaseModel):
    """``other`` against ``base``: each difference is other minus base."""

    base: SimulationReport
    other: SimulationReport
    total: dict[str, float]
    by_day: list[DayDifference]


def build_report(
    tally: Tally, *, label: str, start: date, days: int, seed: int, timezone: str, prices: Prices
) -> SimulationReport:
    by_day: list[DayFigures] = []
    open_accounts = 0
    before = [counts for day, counts in tally.days.items() if day < start]
    open_accounts += sum(c.started - c.ended for c in before)
    deferrals: dict[str, int] = {}
    templates: dict[str, int] = {}
    for offset in range(days):
        day = start + timedelta(days=offset)
        counts = tally.days.get(day, DayTally())
        open_accounts += counts.started - counts.ended
        by_day.append(_day(day, counts, open_accounts, prices))
        for reason, count in counts.deferrals.items():
            deferrals[reason] = deferrals.get(reason, 0) + count
        for template, sent in counts.sms.items():
            templates[template] = templates.get(template, 0) + sent
    whole = ArmTally()
    for arm in tally.arms.values():
        whole.add(arm)
    return SimulationReport(
        label=label,
        accounts=tally.accounts,
        start=start,
        days=days,
        seed=seed,
        timezone=timezone,
        prices=prices,
        total=_arm("total", whole, prices),
        sms_by_template=dict(sorted(templates.items())),
        peak_per_minute=max((d.peak_per_minute for d in by_day), default=0),
        minutes_over_rate=sum(d.minutes_over_rate for d in by_day),
        deferrals=dict(sorted(deferrals.items())),
        cap_collisions=sum(d.cap_collisions for d in by_day),
        arms=[_arm(name, counts, prices) for name, counts in sorted(tally.arms.items())],
        by_day=by_day,
    )


def compare(base: SimulationReport, other: SimulationReport) -> Comparison:
    a, b = base.total, other.total
    total = {
        "sms": float(b.sms - a.sms),
        "sms_parts": float(b.sms_parts - a.sms_parts),
        "sms_cost": float(b.sms_cost - a.sms_cost),
        "call_tasks": float(b.call_tasks - a.call_tasks),
        "agent_hours": round(b.agent_hours - a.agent_hours, 2),
        "specialist_handoffs": float(b.specialist_handoffs - a.specialist_handoffs),
        "cures": float(b.cures - a.cures),
        "cure_rate": round(b.cure_rate - a.cure_rate, 4),
        "opt_outs": float(b.opt_outs - a.opt_outs),
        "peak_per_minute": float(other.peak_per_minute - base.peak_per_minute),
        "minutes_over_rate": float(other.minutes_over_rate - base.minutes_over_rate),
        "cap_collisions": float(other.cap_collisions - base.cap_collisions),
    }
    by_day = [
        DayDifference(
            day=x.day,
            sms=y.sms - x.sms,
            sms_cost=y.sms_cost - x.sms_cost,
            call_tasks=y.call_tasks - x.call_tasks,
            agent_hours=round(y.agent_hours - x.agent_hours, 2),
            specialist_handoffs=y.specialist_handoffs - x.specialist_handoffs,
            cures=y.cures - x.cures,
        )
        for x, y in zip(base.by_day, other.by_day, strict=True)
    ]
    return Comparison(base=base, other=other, total=total, by_day=by_day)


def _day(day: date, counts: DayTally, open_accounts: int, prices: Prices) -> DayFigures:
    peak = max(counts.per_minute.values(), default=0)
    over = sum(1 for sends in counts.per_minute.values() if sends > prices.gateway_per_minute)
    return DayFigures(
        day=day,
        sms=sum(counts.sms.values()),
        sms_by_template=dict(sorted(counts.sms.items())),
        sms_parts=counts.sms_segments,
        sms_cost=_cost(counts.sms_segments, prices),
        peak_per_minute=peak,
        minutes_over_rate=over,
        call_tasks=counts.call_tasks,
        agent_hours=_hours(counts.call_tasks, prices),
        specialist_handoffs=counts.specialist_handoffs,
        deferrals=dict(sorted(counts.deferrals.items())),
        cap_collisions=sum(n for reason, n in counts.deferrals.items() if reason in CAP_REASONS),
        replies=counts.replies,
        promises=counts.promises,
        opt_outs=counts.opt_outs,
        cures=counts.cures,
        collected=_money(counts.collected),
        open_accounts=open_accounts,
    )


def _arm(name: str, counts: ArmTally, prices: Prices) -> ArmFigures:
    return ArmFigures(
        arm=name,
        accounts=counts.accounts,
        sms=counts.sms,
        sms_parts=counts.sms_segments,
        sms_cost=_cost(counts.sms_segments, prices),
        call_tasks=counts.call_tasks,
        agent_hours=_hours(counts.call_tasks, prices),
        specialist_handoffs=counts.specialist_handoffs,
        opt_outs=counts.opt_outs,
        cures=counts.cures,
        cure_rate=round(counts.cures / counts.accounts, 4) if counts.accounts else 0.0,
        collected=_money(counts.collected),
    )


def _cost(parts: int, prices: Prices) -> Decimal:
    return (prices.sms_price * parts).quantize(CENTS)


def _hours(tasks: int, prices: Prices) -> float:
    return round(tasks * prices.handle_minutes / 60, 2)


def _money(cents: dict[str, int]) -> dict[str, Decimal]:
    return {currency: (Decimal(amount) / 100).quantize(CENTS) for currency, amount in sorted(cents.items())}
