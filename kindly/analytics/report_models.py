"""The reports' parameters and answers (pydantic: the API's JSON, the CLI's ``--format json``), and their
CSV. The figures are computed in ``kindly.analytics.reports``; ``docs/analytics.md`` defines each."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field


class ReportName(StrEnum):
    CURE_CURVE = "cure-curve"
    ROLL_RATES = "roll-rates"
    PROMISES = "promises"
    RATES = "rates"
    EFFICIENCY = "efficiency"


class Split(StrEnum):
    """What a report's rows are grouped by (none: one group, ``all``)."""

    SEGMENT = "segment"
    TEMPLATE = "template"
    ARM = "arm"
    COHORT = "cohort"


DEFAULT_DAYS = 90
MAX_DAYS = 3650
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
"""The days a report may be as of."""


class ReportQuery(BaseModel):
    """A report's parameters."""

    by: Split | None = None
    """The split; ``roll-rates`` splits by cohort unless told otherwise, the others not at all."""
    experiment: str | None = Field(default=None, min_length=1, max_length=64)
    """The experiment whose arms ``by=arm`` splits by (required with it); with another split, only
    the accounts the experiment assigned an arm are counted."""
    days: int = Field(default=DEFAULT_DAYS, ge=0, le=MAX_DAYS)
    """The cure curve's last day, and "cured within N days" in ``efficiency``."""
    as_of: date | None = Field(default=None, ge=FIRST_DAY, le=LAST_DAY)
    """The day the report is as of (default: today, UTC): only days and month-ends up to it count."""


class ReportError(ValueError):
    """Parameters that do not make a report; ``field`` names the one to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Refresh(BaseModel):
    """How the derived table was brought up to the audit log before the report was computed."""

    rebuilt: bool
    audit_rows_read: int
    accounts_refolded: int
    watermark: int
    seconds: float


class CurePoint(BaseModel):
    group: str
    day: int
    """Days since the due date."""
    accounts: int
    """Accounts whose due date is at least ``day`` days before the report's day (observed that long)."""
    cured: int
    """Of those, repaid in full by ``day`` days after the due date."""
    share: float | None


class RollRate(BaseModel):
    group: str
    from_bucket: str
    to_bucket: str
    accounts: int
    """Month-end to next month-end moves of open accounts from ``from_bucket`` to ``to_bucket``."""
    from_accounts: int
    """Month-end to next month-end moves out of ``from_bucket`` (every destination)."""
    share: float


class PromiseFigures(BaseModel):
    group: str
    accounts: int
    accounts_with_promises: int
    made: int
    kept: int
    broken: int
    unresolved: int
    """Still open, replaced by a newer promise, or paid only after the date without being broken."""
    kept_rate: float | None
    """kept / (kept + broken)."""


class ResponseRates(BaseModel):
    group: str
    sms_sent: int
    replies: int
    opt_outs: int
    disputes: int
    hardships: int
    complaints: int
    """Complaints opened about how the lender collects."""
    complaints_acknowledged_late: int
    """Complaints not acknowledged by their deadline (the workflow escalated them)."""
    complaints_resolved_late: int
    """Complaints not resolved by their deadline (the workflow escalated them)."""
    replies_per_1000_sms: float | None
    opt_outs_per_1000_sms: float | None
    disputes_per_1000_sms: float | None
    complaints_per_1000_sms: float | None
    complaints_acknowledged_late_per_1000_sms: float | None
    complaints_resolved_late_per_1000_sms: float | None


class Efficiency(BaseModel):
    group: str
    currency: str
    accounts: int
    cured: int
    cured_within_days: int
    sms_sent: int
    call_tasks: int
    collected: Decimal
    """Repayments and settlements, in ``currency``."""
    sms_per_cured_account: float | None
    collected_per_sms: Decimal | None


class ReportHeader(BaseModel):
    report: ReportName
    by: Split | None
    experiment: str | None
    days: int
    as_of: date
    accounts: int
    """Accounts counted: those whose ``started`` entry is in the audit log (and in the experiment, when
    one is named)."""
    refresh: Refresh | None = None


class CureCurveReport(ReportHeader):
    ROW: ClassVar[type[BaseModel]] = CurePoint
    rows: list[CurePoint]


class RollRatesReport(ReportHeader):
    ROW: ClassVar[type[BaseModel]] = RollRate
    rows: list[RollRate]


class PromisesReport(ReportHeader):
    ROW: ClassVar[type[BaseModel]] = PromiseFigures
    rows: list[PromiseFigures]


class RatesReport(ReportHeader):
    ROW: ClassVar[type[BaseModel]] = ResponseRates
    rows: list[ResponseRates]


class EfficiencyReport(ReportHeader):
    ROW: ClassVar[type[BaseModel]] = Efficiency
    rows: list[Efficiency]


Report = CureCurveReport | RollRatesReport | PromisesReport | RatesReport | EfficiencyReport


def report_rows(report: Report) -> tuple[list[str], list[dict[str, object]]]:
    """The report's columns and rows as plain values (JSON's: numbers, text, empty for none)."""
    columns = list(report.ROW.model_fields)
    rows: list[dict[str, object]] = [row.model_dump(mode="json") for row in report.rows]
    return columns, rows


def to_csv(report: Report) -> str:
    """One line per row, with a header line; an empty value is a figure that has no denominator."""
    columns, rows = report_rows(report)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
