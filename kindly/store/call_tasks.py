"""The call task table and the records around it: a task as the account's escalation asks for it, a call
as the regimes' limits count it, and the refusal an agent reads. ``kindly.store.work_queue`` works them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

OPEN_TASK_INDEX = "ux_call_task_open_account"
_OPEN_SQL = "closed_at IS NULL"

SUPERSEDED = "superseded"
"""``closed_reason`` of a task a newer task of the same account replaced."""
OUTCOME = "outcome"
"""``closed_reason`` of a task whose call's outcome an agent recorded."""


class CallTask(SQLModel, table=True):
    """One call the phone team owes an account: what to say and when, and who holds it now."""

    __tablename__ = "call_task"
    __table_args__ = (
        # At most one open task per account; also what the queue's scan of open tasks reads.
        Index(
            OPEN_TASK_INDEX,
            "account_id",
            unique=True,
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, index=True)
    account_id: str = Field(index=True)
    attempt: int
    reason: str
    amount_due: str
    currency: str
    # The queue's facts; NULL for tasks of runs from before the queue (they sent none).
    due_date: date | None = None
    timezone: str | None = None
    locale: str | None = None
    segment: str | None = None
    regime: str | None = None
    window_start: time | None = None
    window_end: time | None = None
    """The window calls may happen in, local time at ``timezone``."""
    promise_broken: bool | None = None
    call_back_at: datetime | None = None
    """The time the customer asked to be called at: the task is not listed before it."""
    offered_until: datetime | None = None
    """The end of the call window of the day the account planned the call for (what the law, its
    calendar and the customer's birthday allowed): the task is not listed after it, and the account's
    next attempt is planned afresh."""
    phone_encrypted: str
    created_at: datetime = Field(index=True)
    claimed_by: str | None = Field(default=None, index=True)
    claimed_until: datetime | None = None
    outcome: str | None = None
    outcome_at: datetime | None = None
    outcome_by: str | None = None
    closed_at: datetime | None = None
    closed_reason: str | None = None
    """``superseded``, ``outcome``, or what ``close_for_account`` was told (``repaid``, ...)."""


@dataclass(frozen=True)
class NewCallTask:
    """A call task as the account's escalation asks for it (the hand-off activity's input, flattened);
    the facts are None for runs that sent none."""

    idempotency_key: str
    account_id: str
    attempt: int
    reason: str
    amount_due: Decimal
    currency: str
    phone: str
    call_back_at: datetime | None = None
    offered_until: datetime | None = None
    due_date: date | None = None
    timezone: str | None = None
    locale: str | None = None
    segment: str | None = None
    regime: str | None = None
    window_start: time | None = None
    window_end: time | None = None
    promise_broken: bool | None = None


@dataclass(frozen=True)
class CallRecord:
    """A call whose outcome was recorded: what the regimes' call limits count."""

    at: datetime
    connected: bool
    """Any outcome but ``no_answer``: the customer was spoken to."""


class TaskUnavailable(Exception):
    """A task the agent cannot take or act on now; the message says why, the attributes say it for a page:
    ``holder`` and ``until`` of another agent's live lease, ``held_task`` of the agent's own other task."""

    def __init__(
        self,
        message: str,
        *,
        holder: str | None = None,
        until: datetime | None = None,
        held_task: int | None = None,
    ) -> None:
        super().__init__(message)
        self.holder, self.until, self.held_task = holder, until, held_task
