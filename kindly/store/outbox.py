"""The send outbox: one row per message or hand-off of a touchpoint, the record that makes sends
idempotent. Its writes also append the audit rows that go with them, in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, update
from sqlmodel import Field, Session, SQLModel, select

from kindly.store.audit import AuditEntry, AuditLog, append_entries
from kindly.store.clock import utcnow
from kindly.store.writes import insert_ignoring_duplicates


class OutboxEntry(SQLModel, table=True):
    """One message or hand-off per touchpoint: the record that makes sends idempotent."""

    __tablename__ = "outbox"

    idempotency_key: str = Field(primary_key=True)
    account_id: str = Field(index=True)
    touchpoint: int
    channel: str
    template: str | None = None
    status: str = "pending"
    """``sending`` while an attempt's answer is awaited (or was lost: the gateway may have the message),
    ``pending`` between attempts the gateway refused; then ``sent``, ``rejected`` (by the gateway) or
    ``cancelled``."""
    detail: str | None = None
    """Why a ``cancelled`` send was cancelled (``opted_out``, ``repaid``, ...)."""
    provider_message_id: str | None = None
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None


ANSWER_LOST = "; an attempt's answer was lost"
"""How a cancelled row's detail ends when an attempt may have delivered the message (``cancel``)."""

OUTBOX_TABLE: Table = OutboxEntry.__table__  # type: ignore[attr-defined]
_COLUMNS = tuple(column.name for column in OUTBOX_TABLE.columns)
# Statements on the path of every SMS, built once (SQLAlchemy caches their compiled form).
_COUNT_ATTEMPT = (
    update(OUTBOX_TABLE)
    .where(OUTBOX_TABLE.c.idempotency_key == bindparam("key"))
    .values(
        attempts=OUTBOX_TABLE.c.attempts + 1,
        status=case((OUTBOX_TABLE.c.status == "pending", "sending"), else_=OUTBOX_TABLE.c.status),
    )
)
_COUNT_ATTEMPT_RETURNING = _COUNT_ATTEMPT.returning(*OUTBOX_TABLE.c)
# The SET clause comes from the parameters: status, provider_message_id, completed_at.
_COMPLETE = update(OUTBOX_TABLE).where(OUTBOX_TABLE.c.idempotency_key == bindparam("key"))


def _row(entry: OutboxEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _COLUMNS}


class AuditStore(AuditLog):
    """Synchronous access to the audit log and outbox; activities call it from a thread.

    The writes on an SMS's path (``append``, ``claim``, ``complete``) are each one transaction of a few
    Core statements: no ORM session, no read before a write. Their idempotency rests on the unique keys
    (``INSERT ... ON CONFLICT DO NOTHING``) and on updates computed by the database, so concurrent
    writers of the same key (a retried activity beside its timed-out first attempt) neither fail nor
    lose a write.
    """

    def claim(self, entry: OutboxEntry, decisions: Sequence[AuditEntry] = ()) -> OutboxEntry:
        """The outbox row for this key, creating it as pending; counts the attempt.

        ``decisions`` (the workflow's decisions that led to this send) are appended as ``append`` does,
        in the same transaction: a crash cannot leave the send claimed without them. The row is inserted
        unless it exists (what ``entry`` says for an existing row is ignored), and the attempt is
        counted by ``attempts = attempts + 1`` in the database, so concurrent claims of one key each
        count. Returns a detached copy of the row as it is after this claim.
        """
        key = entry.idempotency_key
        with self._engine.begin() as connection:
            if decisions:
                append_entries(connection, decisions)
            insert_ignoring_duplicates(connection, OUTBOX_TABLE, [_row(entry)], ("idempotency_key",))
            if connection.dialect.update_returning:
                row = connection.execute(_COUNT_ATTEMPT_RETURNING, {"key": key}).one()
            else:  # pragma: no cover - SQLite and PostgreSQL return the row
                connection.execute(_COUNT_ATTEMPT, {"key": key})
                row = connection.execute(
                    OUTBOX_TABLE.select().where(OUTBOX_TABLE.c.idempotency_key == key)
                ).one()
        return OutboxEntry(**row._mapping)

    def complete(
        self, idempotency_key: str, status: str, provider_message_id: str | None, audit: AuditEntry
    ) -> None:
        """Mark the outbox row done and write its audit row (unless its event key exists) in one
        transaction. Without an outbox row the audit row is still written."""
        with self._engine.begin() as connection:
            connection.execute(
                _COMPLETE,
                {
                    "key": idempotency_key,
                    "status": status,
                    "provider_message_id": provider_message_id,
                    "completed_at": utcnow(),
                },
            )
            append_entries(connection, [audit])

    def release(self, idempotency_key: str) -> None:
        """The attempt in flight was refused (the gateway did not take the message): back to ``pending``."""
        with self._engine.begin() as connection:
            connection.execute(
                update(OUTBOX_TABLE)
                .where(OUTBOX_TABLE.c.idempotency_key == idempotency_key, OUTBOX_TABLE.c.status == "sending")
                .values(status="pending")
            )

    def cancel(self, entry: OutboxEntry, reason: str, decisions: Sequence[AuditEntry] = ()) -> str:
        """End a touchpoint the workflow cancelled: its row becomes ``cancelled`` with ``reason`` unless
        an attempt completed it first (``sent`` or ``rejected``), and is created so if no attempt got
        as far as claiming it. ``decisions`` are appended in the same transaction.

        Returns what became of the message: ``sent`` or ``rejected`` (an attempt completed it),
        ``cancelled`` (no attempt can have delivered it), or ``unknown`` when an attempt's answer was
        lost (a worker that stopped mid-request, a timeout): the gateway may have taken it, so the
        caller must count it as sent. The row then says so in its detail."""
        key = entry.idempotency_key
        row = {**_row(entry), "status": "cancelled", "detail": reason, "completed_at": utcnow()}
        with self._engine.begin() as connection:
            if decisions:
                append_entries(connection, decisions)
            insert_ignoring_duplicates(connection, OUTBOX_TABLE, [row], ("idempotency_key",))
            status, detail = connection.execute(
                select(OUTBOX_TABLE.c.status, OUTBOX_TABLE.c.detail)
                .where(OUTBOX_TABLE.c.idempotency_key == key)
                .with_for_update()
            ).one()
            if status == "cancelled":  # cancelled before (a retried call): the same answer
                return "unknown" if (detail or "").endswith(ANSWER_LOST) else "cancelled"
            if status in ("sent", "rejected"):
                return str(status)
            unknown = status == "sending"
            connection.execute(
                update(OUTBOX_TABLE)
                .where(OUTBOX_TABLE.c.idempotency_key == key)
                .values(
                    status="cancelled",
                    detail=f"{reason}{ANSWER_LOST}" if unknown else reason,
                    completed_at=utcnow(),
                )
            )
        return "unknown" if unknown else "cancelled"

    def outbox_by_provider_id(self, provider_message_id: str) -> OutboxEntry | None:
        """The send a carrier's receipt refers to."""
        with Session(self._engine) as session:
            return session.exec(
                select(OutboxEntry).where(OutboxEntry.provider_message_id == provider_message_id)
            ).first()

    def outbox_for(self, account_id: str) -> list[OutboxEntry]:
        with Session(self._engine) as session:
            rows = session.exec(select(OutboxEntry).where(OutboxEntry.account_id == account_id)).all()
            return list(rows)
