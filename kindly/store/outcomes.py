"""Derived tables of the outcome analytics (``kindly.analytics``): one row per account, folded from the
audit log, and the watermark up to which the audit log has been folded.

Nothing here is a source of truth: both tables are rebuilt from ``audit_log`` whenever they are missing,
stale or of an older definition (``kindly.analytics.outcome_table``). Amounts are exact decimals as text,
as in ``payment_notice`` (SQLite passes a Numeric through float).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Table
from sqlmodel import Field, SQLModel

from kindly.store.clock import utcnow


class AccountOutcomeRecord(SQLModel, table=True):
    """What happened to one account, as its audit entries tell it (``kindly.analytics.outcomes``)."""

    __tablename__ = "account_outcomes"

    account_id: str = Field(primary_key=True)
    segment: str | None = None
    currency: str | None = None
    amount_due: str | None = None
    """The amount due when the account started (its first ``started`` entry)."""
    due_date: date | None = None
    started_at: datetime | None = None
    experiments: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """``{experiment: arm}``."""
    cured_at: datetime | None = None
    cure_day: int | None = None
    settled_at: datetime | None = None
    closed_at: datetime | None = None
    collected: str = "0"
    repayments: int = 0
    sms_sent: int = 0
    templates: dict[str, dict[str, int]] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """``{template: {"sent": n, "replies": n, "opt_outs": n, "disputes": n, "hardships": n, "complaints": n,
    "complaints_acknowledged_late": n, "complaints_resolved_late": n}}``."""
    call_tasks: int = 0
    replies: int = 0
    opted_out: bool = False
    hardship: bool = False
    dispute: bool = False
    promises_made: int = 0
    promises_kept: int = 0
    promises_broken: int = 0
    escalated_specialist: bool = False
    # Added after the table was first made (0009): a server default, so that a process of the version
    # before, which names its columns, still writes its rows.
    complaints_opened: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    complaints_acknowledged_late: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """``complaint_acknowledgement_overdue`` entries: complaints not acknowledged by their deadline."""
    complaints_resolved_late: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """``complaint_resolution_overdue`` entries: complaints not resolved by their deadline."""
    last_audit_id: int = 0
    """The newest audit row folded into this one."""


class OutcomeWatermark(SQLModel, table=True):
    """How far a derived table has folded the audit log: every audit row up to ``audit_id`` is in it,
    under the definitions of ``version``."""

    __tablename__ = "analytics_watermark"

    name: str = Field(primary_key=True)
    audit_id: int
    version: int
    refreshed_at: datetime = Field(default_factory=utcnow)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


OUTCOME_TABLE = _table(AccountOutcomeRecord)
WATERMARK_TABLE = _table(OutcomeWatermark)
