"""Complaints about how the lender collects (``kindly.domain.complaints``), one row per complaint, for the
queues that work them: the open ones by their next deadline, and an account's own.

The account's workflow is the source of truth: it sends each complaint that changed, as it stands now, with
its ``record_changes`` local activity, and ``ComplaintStore.upsert`` keeps it here.

* **Idempotent, and facts only accumulate.** A local activity is retried, and a run that replays may send
  an older snapshot after a newer one was written. So an upsert never clears a fact that is set: each of
  ``acknowledged_at``, ``resolved_at``, ``outcome`` and the two ``*_overdue_at`` keeps the first value
  written. The account's facts the queue shows (segment, time zone, locale) are taken from the newer of the
  two snapshots, by ``updated_at``: the latest instant the complaint records, the snapshot's own time,
  so the same snapshot always writes the same row. What a complaint is opened with (channel, received,
  deadlines) never changes.
* **One row per account and number** (``ux_complaint_account_number``): one statement per complaint,
  ``INSERT ... ON CONFLICT DO UPDATE``, so concurrent writers agree.
* **The open ones are few.** The listing reads the open complaints through a partial index over them
  (``ix_complaint_open_deadlines``) and orders them by their next deadline: ``acknowledge_by`` while
  unacknowledged, else ``resolve_by``.
* **No personal data.** Instants, numbers and codes; no note (an operator's note goes to the audit log).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Engine, Index, Row, Table, case, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel

from kindly.domain.complaints import Complaint, ComplaintChannel, ComplaintOutcome

ACCOUNT_NUMBER_INDEX = "ux_complaint_account_number"
OPEN_DEADLINES_INDEX = "ix_complaint_open_deadlines"
_OPEN_SQL = "resolved_at IS NULL"
MAX_PAGE = 1000
"""The most complaints one ``open_by_deadline`` call returns."""
MAX_OFFSET = 1_000_000_000
"""Far past any real listing, and within every backend's integers."""
ACKNOWLEDGEMENT = "acknowledgement"
RESOLUTION = "resolution"


class ComplaintRow(SQLModel, table=True):
    """One complaint as the queues read it: its deadlines, what became of it, and the account's facts."""

    __tablename__ = "complaint"
    __table_args__ = (
        Index(ACCOUNT_NUMBER_INDEX, "account_id", "number", unique=True),
        Index(
            OPEN_DEADLINES_INDEX,
            "acknowledge_by",
            "resolve_by",
            "received_at",
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: str
    number: int
    """The complaint's number on its account, 1 for the first."""
    channel: str
    received_at: datetime
    acknowledge_by: datetime
    resolve_by: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    outcome: str | None = None
    acknowledgement_overdue_at: datetime | None = None
    """When the workflow found it unacknowledged at its deadline and escalated it."""
    resolution_overdue_at: datetime | None = None
    """When the workflow found it unresolved at its deadline and escalated it."""
    segment: str
    timezone: str
    locale: str
    updated_at: datetime
    """The latest instant the complaint records: the time of the snapshot this row was last taken from."""


COMPLAINT_TABLE: Table = ComplaintRow.__table__  # type: ignore[attr-defined]
_c = COMPLAINT_TABLE.c


class ComplaintView(BaseModel):
    """A complaint as the store gives it to its readers (the console, the API, the CLI); instants aware
    UTC."""

    account_id: str
    number: int
    channel: ComplaintChannel
    received_at: datetime
    acknowledge_by: datetime
    resolve_by: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    outcome: ComplaintOutcome | None = None
    acknowledgement_overdue_at: datetime | None = None
    resolution_overdue_at: datetime | None = None
    segment: str
    timezone: str
    locale: str
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def awaiting(self) -> str | None:
        """What the lender owes the customer next: ``acknowledgement``, ``resolution``, or None once
        resolved."""
        if not self.is_open:
            return None
        return ACKNOWLEDGEMENT if self.acknowledged_at is None else RESOLUTION

    @property
    def next_deadline(self) -> datetime | None:
        """The deadline of what is awaited (past when it is overdue), or None once resolved: what the open
        listing orders by."""
        awaiting = self.awaiting
        if awaiting is None:
            return None
        return self.acknowledge_by if awaiting == ACKNOWLEDGEMENT else self.resolve_by


class ComplaintSnapshot(Protocol):
    """A complaint as the workflow sends it (``activities.inputs.ComplaintRecord``), with the account's
    facts its queue shows it by."""

    @property
    def account_id(self) -> str: ...
    @property
    def segment(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def locale(self) -> str: ...
    @property
    def complaint(self) -> Complaint: ...


def snapshot_time(complaint: Complaint) -> datetime:
    """The latest instant ``complaint`` records: a snapshot taken later holds at least as much."""
    instants = (
        complaint.received_at,
        complaint.acknowledged_at,
        complaint.resolved_at,
        complaint.acknowledgement_overdue_at,
        complaint.resolution_overdue_at,
    )
    return max(instant for instant in instants if instant is not None)


def _row(record: ComplaintSnapshot) -> dict[str, Any]:
    complaint = record.complaint
    return {
        "account_id": record.account_id,
        "number": complaint.number,
        "channel": str(complaint.channel),
        "received_at": complaint.received_at,
        "acknowledge_by": complaint.acknowledge_by,
        "resolve_by": complaint.resolve_by,
        "acknowledged_at": complaint.acknowledged_at,
        "resolved_at": complaint.resolved_at,
        "outcome": None if complaint.outcome is None else str(complaint.outcome),
        "acknowledgement_overdue_at": complaint.acknowledgement_overdue_at,
        "resolution_overdue_at": complaint.resolution_overdue_at,
        "segment": record.segment,
        "timezone": record.timezone,
        "locale": record.locale,
        "updated_at": snapshot_time(complaint),
    }


_KEPT_ONCE_SET = (
    "acknowledged_at",
    "resolved_at",
    "outcome",
    "acknowledgement_overdue_at",
    "resolution_overdue_at",
)
_FROM_NEWER = ("segment", "timezone", "locale", "updated_at")


def _next_deadline() -> ColumnElement[datetime]:
    return case((_c.acknowledged_at.is_(None), _c.acknowledge_by), else_=_c.resolve_by)


def _view(row: Row[Any]) -> ComplaintView:
    values = dict(row._mapping)
    values.pop("id", None)
    return ComplaintView.model_validate(values)


class ComplaintStore:
    """Write the workflow's complaints and read them for the queues; blocking, one short transaction
    each."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def upsert(self, records: Sequence[ComplaintSnapshot]) -> None:
        """Keep each complaint as its snapshot says, never losing a fact a row already has (see the
        module's notes): a retry, or an older snapshot after a newer one, changes nothing."""
        if not records:
            return
        rows = [_row(record) for record in records]
        with self._engine.begin() as connection:
            dialect = connection.dialect.name
            if dialect not in ("sqlite", "postgresql"):  # pragma: no cover - the backends Kindly supports
                raise NotImplementedError(f"complaints are kept on SQLite or PostgreSQL, not {dialect}")
            dialect_insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
            statement = dialect_insert(COMPLAINT_TABLE)
            new = statement.excluded
            newer = new.updated_at >= _c.updated_at
            kept: dict[str, Any] = {name: func.coalesce(_c[name], new[name]) for name in _KEPT_ONCE_SET}
            taken: dict[str, Any] = {name: case((newer, new[name]), else_=_c[name]) for name in _FROM_NEWER}
            upsert = statement.on_conflict_do_update(
                index_elements=["account_id", "number"], set_=kept | taken
            )
            # One execution per row: two snapshots of one complaint in a batch are applied in turn.
            for row in rows:
                connection.execute(upsert, row)

    def open_by_deadline(self, *, limit: int = 50, offset: int = 0) -> list[ComplaintView]:
        """A page of the open (unresolved) complaints, the nearest deadline first (the overdue ones before
        all others), then the earliest received."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit: between 1 and {MAX_PAGE}, got {limit}")
        if not 0 <= offset <= MAX_OFFSET:
            raise ValueError(f"offset: between 0 and {MAX_OFFSET}, got {offset}")
        query = (
            select(COMPLAINT_TABLE)
            .where(_c.resolved_at.is_(None))
            .order_by(_next_deadline(), _c.received_at, _c.account_id, _c.number)
            .limit(limit)
            .offset(offset)
        )
        with self._engine.connect() as connection:
            return [_view(row) for row in connection.execute(query)]

    def count_open(self) -> int:
        query = select(func.count()).select_from(COMPLAINT_TABLE).where(_c.resolved_at.is_(None))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def for_account(self, account_id: str) -> list[ComplaintView]:
        """The account's complaints, open and resolved, by number."""
        query = select(COMPLAINT_TABLE).where(_c.account_id == account_id).order_by(_c.number)
        with self._engine.connect() as connection:
            return [_view(row) for row in connection.execute(query)]
