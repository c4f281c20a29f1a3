"""The audit log: one row per decision or action, for compliance. Written once per event key, because
the activities that write it may be retried."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Index, Table
from sqlmodel import Field, Session, SQLModel, col, select

from kindly.store.clock import utcnow
from kindly.store.writes import insert_ignoring_duplicates


class AuditEntry(SQLModel, table=True):
    """One decision or action for compliance: what happened to which account, when and why."""

    __tablename__ = "audit_log"
    # An account's entries in time order: the outcome analytics fold them (kindly.analytics).
    __table_args__ = (Index("ix_audit_log_account_id_at", "account_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    event_key: str = Field(unique=True, index=True)
    account_id: str = Field(index=True)
    at: datetime = Field(index=True)  # daily figures count by it (kindly.programs.figures)
    kind: str = Field(index=True)
    detail: str
    touchpoint: int | None = None
    template: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    outcome: str | None = None
    recorded_at: datetime = Field(default_factory=utcnow)
    # The console user who acted; None for the engine (workflows, activities, webhooks).
    actor: str | None = None


DELIVERY_RECEIPT = "delivery_receipt"
"""The audit kind of a carrier's delivery receipt (``outcome``: its status); the only kind that is not a
workflow's ``TimelineKind``, since receipts reach the API, not the workflow."""

CONSOLE_ACTION = "console_action"
"""The audit kind of an action a person took in the staff console (``actor``: who; ``outcome``:
``accepted``, ``refused``, ``forbidden`` or ``failed``). Kept apart from the workflow's kinds so that
the outcome analytics, which fold the engine's decisions, pass over it, while compliance still reads
who did what."""

AUDIT_TABLE: Table = AuditEntry.__table__  # type: ignore[attr-defined]
# The columns an insert writes: the row's id is the database's.
_COLUMNS = tuple(column.name for column in AUDIT_TABLE.columns if column.name != "id")


def append_entries(connection: Connection, entries: Iterable[AuditEntry]) -> int:
    """Insert the entries whose event key is new, in the caller's transaction; how many were new."""
    rows: list[dict[str, Any]] = [{name: getattr(entry, name) for name in _COLUMNS} for entry in entries]
    return insert_ignoring_duplicates(connection, AUDIT_TABLE, rows, ("event_key",))


class AuditLog:
    """Synchronous access to the audit log; activities call it from a thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """The database it writes to (the activities' other tables live there too)."""
        return self._engine

    def append(self, entries: Sequence[AuditEntry]) -> int:
        """Insert the entries whose event key is new; returns how many were new.

        One statement that skips existing keys (``insert_ignoring_duplicates``): another writer that
        inserts the same key first (a retried activity beside its timed-out first attempt) makes this
        one skip it, neither fails, and the row is written once. A key repeated in ``entries`` counts
        once (its first entry).
        """
        if not entries:
            return 0
        with self._engine.begin() as connection:
            return append_entries(connection, entries)

    def audit_for(self, account_id: str) -> list[AuditEntry]:
        with Session(self._engine) as session:
            rows = session.exec(
                select(AuditEntry).where(AuditEntry.account_id == account_id).order_by(col(AuditEntry.id))
            ).all()
            return list(rows)
