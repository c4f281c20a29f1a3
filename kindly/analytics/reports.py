"""The outcome reports, computed from the per-account outcomes (``kindly.analytics.outcomes``): the cure
curve, roll rates between days-past-due buckets, promises kept, reply/opt-out/dispute/complaint rates per
1,000 SMS, and SMS and money per cure. ``build_report`` refreshes the derived table first, so an answer is as
fresh as the audit log; ``compute_report`` is the pure part. Definitions: ``docs/analytics.md``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine

from kindly.analytics.outcome_table import load_outcomes, refresh_outcomes
from kindly.analytics.outcomes import COMPLAINT_FIGURES, RESPONSES, AccountOutcome
from kindly.analytics.report_models import (
    CureCurveReport,
    CurePoint,
    Efficiency,
    EfficiencyReport,
    PromiseFigures,
    PromisesReport,
    RatesReport,
    Refresh,
    Report,
    ReportError,
    ReportHeader,
    ReportName,
    ReportQuery,
    ResponseRates,
    RollRate,
    RollRatesReport,
    Split,
)
from kindly.store.clock import utcnow

ALL = "all"
CURRENT = "current"
CLOSED = "closed"
BUCKETS = (CURRENT, "1-30", "31-60", "61-90", "90+")
"""Days-past-due buckets at a month-end; ``closed`` (settled or closed, not repaid) only as a destination."""
TO_BUCKETS = (*BUCKETS, CLOSED)
SPLITS: dict[ReportName, tuple[Split, ...]] = {
    ReportName.RATES: tuple(Split),
    **{name: (Split.SEGMENT, Split.ARM, Split.COHORT) for name in ReportName if name != ReportName.RATES},
}
"""The splits each report takes: by template only the per-SMS rates (by the template of the SMS)."""


def build_report(engine: Engine, name: ReportName, query: ReportQuery) -> Report:
    """Refresh ``account_outcomes`` from the audit log, then compute the report (blocking)."""
    check(name, query)
    refreshed = refresh_outcomes(engine)
    report = compute_report(name, load_outcomes(engine, columns_for(name, query)), query)
    report.refresh = Refresh(
        rebuilt=refreshed.rebuilt,
        audit_rows_read=refreshed.audit_rows,
        accounts_refolded=refreshed.accounts,
        watermark=refreshed.watermark,
        seconds=refreshed.seconds,
    )
    return report


_COLUMNS: dict[ReportName, tuple[str, ...]] = {
    ReportName.CURE_CURVE: ("cured_at",),
    ReportName.ROLL_RATES: ("started_at", "cured_at", "settled_at", "closed_at"),
    ReportName.PROMISES: ("promises_made", "promises_kept", "promises_broken"),
    ReportName.RATES: (
        "templates",
        "complaints_opened",
        "complaints_acknowledged_late",
        "complaints_resolved_late",
    ),
    ReportName.EFFICIENCY: ("currency", "cured_at", "collected", "sms_sent", "call_tasks"),
}


def columns_for(name: ReportName, query: ReportQuery) -> tuple[str, ...]:
    """The columns of ``account_outcomes`` a report reads: a report reads only what it counts."""
    experiments = ("experiments",) if query.experiment is not None else ()
    return ("segment", "due_date", *experiments, *_COLUMNS[name])


def check(name: ReportName, query: ReportQuery) -> None:
    """Refuse parameters that make no report, naming the one to change."""
    split = split_of(name, query)
    if split is not None and split not in SPLITS[name]:
        allowed = ", ".join(SPLITS[name])
        raise ReportError("by", f"{name} splits by {allowed}, not {split} (by template: only rates)")
    if split is Split.ARM and query.experiment is None:
        raise ReportError("experiment", "by arm needs the experiment whose arms to compare")


def split_of(name: ReportName, query: ReportQuery) -> Split | None:
    if query.by is None and name is ReportName.ROLL_RATES:
        return Split.COHORT
    return query.by


def compute_report(name: ReportName, outcomes: Iterable[AccountOutcome], query: ReportQuery) -> Report:
    check(name, query)
    split = split_of(name, query)
    as_of = query.as_of or utcnow().date()
    counted = [
        outcome
        for outcome in outcomes
        if outcome.due_date is not None
        and (query.experiment is None or split is Split.ARM or query.experiment in outcome.experiments)
    ]
    header = ReportHeader(
        report=name,
        by=split,
        experiment=query.experiment,
        days=query.days,
        as_of=as_of,
        accounts=len(counted),
    ).model_dump()
    groups = _grouped(counted, _group_key(split, query.experiment))
    if name is ReportName.CURE_CURVE:
        return CureCurveReport(**header, rows=list(_cure_curve(groups, query.days, as_of)))
    if name is ReportName.ROLL_RATES:
        return RollRatesReport(**header, rows=list(_roll_rates(groups, as_of)))
    if name is ReportName.PROMISES:
        return PromisesReport(**header, rows=[_promises(group, members) for group, members in groups])
    if name is ReportName.RATES:
        return RatesReport(**header, rows=_rates(groups, by_template=split is Split.TEMPLATE))
    return EfficiencyReport(**header, rows=list(_efficiency(groups, query.days)))


def _group_key(split: Split | None, experiment: str | None) -> Callable[[AccountOutcome], str]:
    if split is Split.SEGMENT:
        return lambda outcome: outcome.segment or "?"
    if split is Split.COHORT:
        return lambda outcome: outcome.cohort or "?"
    if split is Split.ARM:
        assert experiment is not None
        return lambda outcome: outcome.arm(experiment)
    return lambda outcome: ALL


def _grouped(
    outcomes: list[AccountOutcome], key: Callable[[AccountOutcome], str]
) -> list[tuple[str, list[AccountOutcome]]]:
    groups: dict[str, list[AccountOutcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[key(outcome)].append(outcome)
    return sorted(groups.items())


def _share(part: int, whole: int, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def _per_1000(part: int, sms: int) -> float | None:
    return round(1000 * part / sms, 2) if sms else None


# --- the cure curve --------------------------------------------------------------------------------


def _cure_curve(
    groups: list[tuple[str, list[AccountOutcome]]], days: int, as_of: date
) -> Iterator[CurePoint]:
    """For each day d: of the accounts observed d days past their due date, the share cured by then.
    Counted with difference arrays (an account is observed on days 0..h, cured on days c..h)."""
    for group, members in groups:
        observed = [0] * (days + 2)
        cured = [0] * (days + 2)
        for outcome in members:
            assert outcome.due_date is not None
            horizon = min((as_of - outcome.due_date).days, days)
            if horizon < 0:
                continue
            observed[0] += 1
            observed[horizon + 1] -= 1
            day = outcome.cure_day
            if day is not None and day <= horizon:
                cured[max(day, 0)] += 1
                cured[horizon + 1] -= 1
        seen = done = 0
        for day in range(days + 1):
            seen += observed[day]
            done += cured[day]
            yield CurePoint(group=group, day=day, accounts=seen, cured=done, share=_share(done, seen))


# --- roll rates ------------------------------------------------------------------------------------


def month_ends(first: date, last: date) -> list[date]:
    """The last days of the months from ``first``'s to ``last``'s, those not after ``last``."""
    ends: list[date] = []
    year, month = first.year, first.month
    while True:
        end = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
        if end > last:
            return ends
        ends.append(end)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def bucket_at(outcome: AccountOutcome, day: date) -> str:
    """The account's bucket at the end of ``day`` (UTC): ``current`` once repaid in full, ``closed``
    once settled or closed; otherwise by days past due (``current`` before the due date)."""
    assert outcome.due_date is not None
    return _bucket(day, outcome.due_date, _day(outcome.cured_at), _closed_on(outcome))


def _bucket(day: date, due: date, cured: date | None, closed: date | None) -> str:
    if cured is not None and cured <= day:
        return CURRENT
    if closed is not None and closed <= day:
        return CLOSED
    late = (day - due).days
    if late <= 0:
        return CURRENT
    if late <= 30:
        return "1-30"
    if late <= 60:
        return "31-60"
    return "61-90" if late <= 90 else "90+"


def _day(instant: datetime | None) -> date | None:
    return None if instant is None else instant.date()


def _closed_on(outcome: AccountOutcome) -> date | None:
    days = [day for day in (_day(outcome.settled_at), _day(outcome.closed_at)) if day is not None]
    return min(days, default=None)


def _roll_rates(groups: list[tuple[str, list[AccountOutcome]]], as_of: date) -> Iterator[RollRate]:
    """Moves between consecutive month-ends of accounts open at the first of the two."""
    starts = [outcome.started_at.date() for _, members in groups for outcome in members if outcome.started_at]
    ends = month_ends(min(starts), as_of) if starts else []
    for group, members in groups:
        moves: dict[tuple[str, str], int] = defaultdict(int)
        for outcome in members:
            if outcome.started_at is None or outcome.due_date is None:
                continue
            due, cured, closed = outcome.due_date, _day(outcome.cured_at), _closed_on(outcome)
            ended = min((day for day in (cured, closed) if day is not None), default=None)
            before: str | None = None
            for end in ends[bisect_left(ends, outcome.started_at.date()) :]:
                now = _bucket(end, due, cured, closed)
                if before is not None:
                    moves[before, now] += 1
                if ended is not None and ended <= end:
                    break
                before = now
        for start in BUCKETS:
            leaving = sum(moves[start, to] for to in TO_BUCKETS)
            if leaving:
                for to in TO_BUCKETS:
                    count = moves[start, to]
                    yield RollRate(
                        group=group,
                        from_bucket=start,
                        to_bucket=to,
                        accounts=count,
                        from_accounts=leaving,
                        share=round(count / leaving, 4),
                    )


# --- promises, rates, efficiency -------------------------------------------------------------------


def _promises(group: str, members: list[AccountOutcome]) -> PromiseFigures:
    made = sum(outcome.promises_made for outcome in members)
    kept = sum(outcome.promises_kept for outcome in members)
    broken = sum(outcome.promises_broken for outcome in members)
    return PromiseFigures(
        group=group,
        accounts=len(members),
        accounts_with_promises=sum(1 for outcome in members if outcome.promises_made),
        made=made,
        kept=kept,
        broken=broken,
        unresolved=made - kept - broken,
        kept_rate=_share(kept, kept + broken),
    )


def _rates(groups: list[tuple[str, list[AccountOutcome]]], by_template: bool) -> list[ResponseRates]:
    """Per group, or per template of the SMS a response followed: responses per 1,000 SMS. A group
    counts every complaint of its accounts (one opened before any SMS too); a template, those that
    followed an SMS of it."""
    totals: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(("sent", *RESPONSES, *COMPLAINT_FIGURES), 0)
    )
    for group, members in groups:
        if not by_template:
            totals[group]  # a group without SMS still has its row
        for outcome in members:
            for template, counts in outcome.templates.items():
                total = totals[template if by_template else group]
                for what, count in counts.items():
                    if by_template or what not in COMPLAINT_FIGURES:
                        total[what] += count
            if not by_template:
                _add_complaints(totals[group], outcome)
    return [_rate_row(group, counts) for group, counts in sorted(totals.items())]


def _add_complaints(total: dict[str, int], outcome: AccountOutcome) -> None:
    total["complaints"] += outcome.complaints_opened
    total["complaints_acknowledged_late"] += outcome.complaints_acknowledged_late
    total["complaints_resolved_late"] += outcome.complaints_resolved_late


def _rate_row(group: str, counts: dict[str, int]) -> ResponseRates:
    sms = counts["sent"]
    return ResponseRates(
        group=group,
        sms_sent=sms,
        replies=counts["replies"],
        opt_outs=counts["opt_outs"],
        disputes=counts["disputes"],
        hardships=counts["hardships"],
        complaints=counts["complaints"],
        complaints_acknowledged_late=counts["complaints_acknowledged_late"],
        complaints_resolved_late=counts["complaints_resolved_late"],
        replies_per_1000_sms=_per_1000(counts["replies"], sms),
        opt_outs_per_1000_sms=_per_1000(counts["opt_outs"], sms),
        disputes_per_1000_sms=_per_1000(counts["disputes"], sms),
        complaints_per_1000_sms=_per_1000(counts["complaints"], sms),
        complaints_acknowledged_late_per_1000_sms=_per_1000(counts["complaints_acknowledged_late"], sms),
        complaints_resolved_late_per_1000_sms=_per_1000(counts["complaints_resolved_late"], sms),
    )


def _efficiency(groups: list[tuple[str, list[AccountOutcome]]], days: int) -> Iterator[Efficiency]:
    """Per group and currency: SMS sent per account cured, money collected per SMS."""
    for group, members in groups:
        by_currency: dict[str, list[AccountOutcome]] = defaultdict(list)
        for outcome in members:
            by_currency[outcome.currency or "?"].append(outcome)
        for currency, accounts in sorted(by_currency.items()):
            cured = sum(1 for outcome in accounts if outcome.cured)
            sms = sum(outcome.sms_sent for outcome in accounts)
            collected = sum((outcome.collected for outcome in accounts), Decimal("0.00"))
            yield Efficiency(
                group=group,
                currency=currency,
                accounts=len(accounts),
                cured=cured,
                cured_within_days=sum(1 for outcome in accounts if outcome.cured_within(days)),
                sms_sent=sms,
                call_tasks=sum(outcome.call_tasks for outcome in accounts),
                collected=collected,
                sms_per_cured_account=round(sms / cured, 2) if cured else None,
                collected_per_sms=(collected / sms).quantize(Decimal("0.01")) if sms else None,
            )
