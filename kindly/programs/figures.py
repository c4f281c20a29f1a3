"""Daily figures for the collections floor: what Kindly did on each day, counted from the audit log.

The audit log holds every decision and action of every account with the instant it happened (``at``),
written by the workers and starters in the shared application database. A day here is a calendar day
in the operator's time zone (``--timezone``), not UTC's: a floor in Shanghai counts its own day. The
figures are counts of events (and of distinct accounts), never amounts or personal data, so they can be
shown on a wall or mailed. Open accounts by stage come from Temporal visibility instead
(``open_accounts_by_stage``), since only the workflows know where each account stands now.

A workflow writes its decisions with the activity that follows them, or on their own when none follows
within five minutes (``workflows.audit_trail.PIGGYBACK_WINDOW``): a day's figures are complete minutes
after it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Engine, distinct, func
from sqlalchemy.orm import Mapped
from sqlmodel import Session, col, select
from temporalio.client import Client

from kindly.domain.contract import Stage, TimelineKind
from kindly.programs.operations import account_query, count_accounts
from kindly.store import DELIVERY_RECEIPT, AuditEntry
from kindly.store.audit import CONSOLE_ACTION

FIGURES: tuple[tuple[TimelineKind, str], ...] = (
    (TimelineKind.STARTED, "accounts started"),
    (TimelineKind.SMS_SENT, "SMS sent"),
    (TimelineKind.SMS_FAILED, "SMS failed"),
    (TimelineKind.SMS_UNDELIVERABLE, "numbers undeliverable"),
    (TimelineKind.DEFERRED, "sends deferred"),
    (TimelineKind.REPLY_RECEIVED, "replies"),
    (TimelineKind.OPTED_OUT, "opt-outs"),
    (TimelineKind.REPAYMENT_RECEIVED, "repayments"),
    (TimelineKind.PROMISE, "promises to pay"),
    (TimelineKind.PROMISE_BROKEN, "promises broken"),
    (TimelineKind.ESCALATED_PHONE, "escalated to phone"),
    (TimelineKind.ESCALATED_SPECIALIST, "escalated to specialist"),
    (TimelineKind.CALL_OUTCOME, "call outcomes"),
    (TimelineKind.PAUSED, "paused"),
    (TimelineKind.RESUMED, "resumed"),
    (TimelineKind.REPAID, "repaid in full"),
    (TimelineKind.SETTLED, "settled"),
    (TimelineKind.CLOSED, "closed"),
    (TimelineKind.COMPLAINT_OPENED, "complaints opened"),
    (TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE, "complaints acknowledged late"),
    (TimelineKind.COMPLAINT_RESOLUTION_OVERDUE, "complaints resolved late"),
)
"""The kinds a day's figures count, in the order they are shown, with their labels."""

COMPLAINT_KINDS: tuple[TimelineKind, ...] = (
    TimelineKind.COMPLAINT_OPENED,
    TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE,
    TimelineKind.COMPLAINT_RESOLUTION_OVERDUE,
)
"""The complaint figures also shown per 1,000 SMS sent in the same period: how the floor's conduct weighs
against its volume. Acknowledged and resolved late are the deadlines the workflow escalated."""

NO_CALENDAR = "no_calendar"
"""The reason a deferral names when its day lies past the data of the policy's holiday calendar."""
WAITING_FOR_CALENDAR = "sends waiting for a holiday calendar"
"""The label of the deferrals that name ``NO_CALENDAR`` (shown after "sends deferred")."""

OPEN_STAGES: tuple[Stage, ...] = tuple(
    stage for stage in Stage if stage not in (Stage.REPAID, Stage.SETTLED, Stage.CLOSED)
)
MAX_DAYS = 92
"""The longest range one request counts (a quarter): five queries per day."""
FIRST_DAY = date.min + timedelta(days=1)
LAST_DAY = date.max - timedelta(days=1)
"""The longest range one request counts (a quarter): one query per day."""


class Figure(BaseModel):
    """How often one kind of event happened on the day, and to how many accounts."""

    kind: TimelineKind
    label: str
    events: int
    accounts: int


class ComplaintRates(BaseModel):
    """Complaints per 1,000 SMS sent in the same period; None when no SMS was sent."""

    opened: float | None
    acknowledged_late: float | None
    resolved_late: float | None

    def of(self, kind: TimelineKind) -> float | None:
        """The rate of one of ``COMPLAINT_KINDS``."""
        rates = (self.opened, self.acknowledged_late, self.resolved_late)
        return dict(zip(COMPLAINT_KINDS, rates, strict=True))[kind]


def complaint_rates(events: Callable[[TimelineKind], int]) -> ComplaintRates:
    """The complaint figures per 1,000 SMS sent, from a period's count of events of each kind."""
    sms = events(TimelineKind.SMS_SENT)
    opened, acknowledged_late, resolved_late = (
        None if sms == 0 else round(1000 * events(kind) / sms, 2) for kind in COMPLAINT_KINDS
    )
    return ComplaintRates(opened=opened, acknowledged_late=acknowledged_late, resolved_late=resolved_late)


class DayFigures(BaseModel):
    """One local day's figures."""

    day: date
    timezone: str
    figures: list[Figure]
    waiting_for_calendar: Figure
    """The day's deferrals (among "sends deferred") whose day lies past the holiday calendar's data:
    reminders that wait until the calendar is extended (reason ``no_calendar``)."""
    sms_by_template: dict[str, int]
    """SMS sent that day by template (pre_due, first_overdue, follow_up, ...)."""
    receipts_by_status: dict[str, int]
    """Carriers' delivery receipts that arrived that day, by status (delivered, undelivered, failed, ...)."""
    accounts_touched: int
    """Distinct accounts with any event of the engine's that day (a person's console action, even a refused
    one, is not the account being worked by Kindly: the audit view lists those)."""
    complaints_per_1000_sms: ComplaintRates
    """The day's complaints opened, acknowledged late and resolved late per 1,000 of its SMS sent."""

    def events(self, kind: TimelineKind) -> int:
        return next(figure.events for figure in self.figures if figure.kind == kind)


def local_day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which ``day`` starts and ends in ``zone``; 23 or 25 hours apart on a
    daylight-saving change."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def day_figures(engine: Engine, day: date, zone: ZoneInfo) -> DayFigures:
    """Count ``day``'s audit events in ``zone`` (blocking: five queries on the ``at`` index)."""
    start, end = local_day_bounds(day, zone)
    during = (col(AuditEntry.at) >= start, col(AuditEntry.at) < end)
    with Session(engine) as session:
        by_kind = {
            kind: (events, accounts)
            for kind, events, accounts in session.exec(
                select(AuditEntry.kind, func.count(), func.count(distinct(col(AuditEntry.account_id))))
                .where(*during)
                .group_by(AuditEntry.kind)
            ).all()
        }
        waiting_events, waiting_accounts = session.exec(
            select(func.count(), func.count(distinct(col(AuditEntry.account_id)))).where(
                *during,
                AuditEntry.kind == TimelineKind.DEFERRED.value,
                # autoescape: "_" is a LIKE wildcard
                col(AuditEntry.detail).contains(NO_CALENDAR, autoescape=True),
            )
        ).one()
        templates = _count_by(session, col(AuditEntry.template), TimelineKind.SMS_SENT.value, during)
        receipts = _count_by(session, col(AuditEntry.outcome), DELIVERY_RECEIPT, during)
        touched = session.exec(
            select(func.count(distinct(col(AuditEntry.account_id)))).where(
                *during, AuditEntry.kind != CONSOLE_ACTION
            )
        ).one()
    return DayFigures(
        day=day,
        timezone=zone.key,
        figures=[
            Figure(kind=kind, label=label, events=events, accounts=accounts)
            for kind, label in FIGURES
            for events, accounts in [by_kind.get(kind, (0, 0))]
        ],
        waiting_for_calendar=Figure(
            kind=TimelineKind.DEFERRED,
            label=WAITING_FOR_CALENDAR,
            events=waiting_events,
            accounts=waiting_accounts,
        ),
        sms_by_template=templates,
        receipts_by_status=receipts,
        accounts_touched=touched,
        complaints_per_1000_sms=complaint_rates(lambda kind: by_kind.get(kind, (0, 0))[0]),
    )


def _count_by(
    session: Session, column: Mapped[str | None], kind: str, during: tuple[ColumnElement[bool], ...]
) -> dict[str, int]:
    """How many of ``kind``'s events in ``during`` have each value of ``column`` ("-" for none)."""
    rows = session.exec(
        select(column, func.count()).where(*during, AuditEntry.kind == kind).group_by(column)
    ).all()
    return {value or "-": count for value, count in sorted(rows, key=lambda row: row[0] or "")}


def daily_figures(engine: Engine, last_day: date, days: int, zone: ZoneInfo) -> list[DayFigures]:
    """The figures of the ``days`` local days ending with ``last_day``, oldest first."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    # A day's bounds in UTC lie up to a day off its date: keep a day clear of the calendar's ends.
    if not FIRST_DAY <= last_day <= LAST_DAY or (last_day - FIRST_DAY).days < days - 1:
        raise ValueError(f"days must lie between {FIRST_DAY} and {LAST_DAY}")
    return [day_figures(engine, last_day - timedelta(days=back), zone) for back in range(days - 1, -1, -1)]


async def open_accounts_by_stage(client: Client) -> dict[str, int]:
    """How many accounts are open in each stage now (Temporal visibility counts)."""
    return {
        stage.value: await count_accounts(client, account_query(stage=stage.value)) for stage in OPEN_STAGES
    }


class FiguresReport(BaseModel):
    """Daily figures over a range of days, and where the open accounts stand now."""

    timezone: str
    days: list[DayFigures]
    open_by_stage: dict[str, int]
    complaints_per_1000_sms: ComplaintRates
    """Over the whole range: its complaints opened, acknowledged late and resolved late per 1,000 of its
    SMS sent (steadier than a day's)."""


def parse_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError) as err:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)") from err


async def figures_report(
    engine: Engine, client: Client, *, last_day: date | None, days: int, zone: ZoneInfo
) -> FiguresReport:
    """The report ``kindly figures`` prints and ``GET /figures`` returns; ``last_day`` defaults to
    today in ``zone``."""
    last = last_day or datetime.now(zone).date()
    counted = await asyncio.to_thread(daily_figures, engine, last, days, zone)
    return FiguresReport(
        timezone=zone.key,
        days=counted,
        open_by_stage=await open_accounts_by_stage(client),
        complaints_per_1000_sms=complaint_rates(lambda kind: sum(day.events(kind) for day in counted)),
    )
