"""The application database: the audit log and the send outbox (sqlmodel; SQLite or PostgreSQL).

Tables are created on first use. Every write is idempotent by a natural key, because activities
that write them may be retried: an audit row by its event key, an outbox row by its idempotency key.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, make_url, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Field, Session, SQLModel, create_engine, select


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuditEntry(SQLModel, table=True):
    """One decision or action for compliance: what happened to which account, when and why."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    event_key: str = Field(unique=True, index=True)
    account_id: str = Field(index=True)
    at: datetime
    kind: str = Field(index=True)
    detail: str
    touchpoint: int | None = None
    template: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    outcome: str | None = None
    recorded_at: datetime = Field(default_factory=_utcnow)


class OutboxEntry(SQLModel, table=True):
    """One message or hand-off per touchpoint: the record that makes sends idempotent."""

    __tablename__ = "outbox"

    idempotency_key: str = Field(primary_key=True)
    account_id: str = Field(index=True)
    touchpoint: int
    channel: str
    template: str | None = None
    status: str = "pending"
    provider_message_id: str | None = None
    attempts: int = 0
    created_at: datetime = Field(default_factory=_utcnow)
    completed_at: datetime | None = None


def make_engine(database_url: str) -> Engine:
    """An engine with the tables created, for SQLite or PostgreSQL (or any SQLAlchemy URL).

    SQLite files get their folder and WAL journaling, and may be shared between threads. PostgreSQL
    URLs use psycopg 3 (``postgresql://`` too, which would otherwise mean psycopg2), check pooled
    connections before use (a restarted or failed-over server), and set each session's time zone to
    UTC, so that timestamps (aware UTC, stored without a zone) read back as written, as on SQLite.
    Several processes may call this at once on an empty database (scaled workers): creating the
    tables is serialised by a lock (an advisory lock on PostgreSQL, a write lock on SQLite).
    """
    url = make_url(database_url)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    backend = url.get_backend_name()
    if backend == "sqlite":
        in_memory = url.database in (None, "", ":memory:")
        if not in_memory and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        for attempt in range(0 if in_memory else 50):
            # Switching to WAL answers "locked" at once (no busy wait) while another process
            # switches or creates the tables; WAL is kept in the file, so a retry soon succeeds.
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA journal_mode=WAL")
                break
            except OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if backend == "postgresql":

        @event.listens_for(engine, "connect")
        def session_in_utc(dbapi_connection: Any, _: object) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
            dbapi_connection.autocommit = autocommit

    with engine.begin() as connection:
        if backend == "postgresql":
            # Any constant key ("kindly"): one process at a time creates the tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 0x6B696E646C79})
        elif backend == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        SQLModel.metadata.create_all(connection)
    return engine


class AuditStore:
    """Synchronous access to the audit log and outbox; activities call it from a thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(self, entries: list[AuditEntry]) -> int:
        """Insert the entries whose event key is new; returns how many were new.

        Another writer may insert the same key between the check and the commit (a retried activity
        beside its timed-out first attempt): the unique key refuses it, and the pass runs again, now
        seeing that row.
        """
        for attempt in range(3):
            try:
                return self._append_new(entries)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _append_new(self, entries: list[AuditEntry]) -> int:
        added = 0
        with Session(self._engine) as session:
            for entry in entries:
                exists = session.exec(
                    select(AuditEntry.id).where(AuditEntry.event_key == entry.event_key)
                ).first()
                if exists is None:
                    session.add(AuditEntry.model_validate(entry.model_dump(exclude={"id"})))
                    added += 1
            session.commit()
        return added

    def claim(self, entry: OutboxEntry) -> OutboxEntry:
        """The outbox row for this key, creating it as pending; counts the attempt."""
        with Session(self._engine) as session:
            row = session.get(OutboxEntry, entry.idempotency_key)
            if row is None:
                session.add(entry)
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                row = session.get(OutboxEntry, entry.idempotency_key)
                assert row is not None
            row.attempts += 1
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    def complete(
        self, idempotency_key: str, status: str, provider_message_id: str | None, audit: AuditEntry
    ) -> None:
        """Mark the outbox row done and write its audit row in one transaction."""
        with Session(self._engine) as session:
            row = session.get(OutboxEntry, idempotency_key)
            if row is not None:
                row.status = status
                row.provider_message_id = provider_message_id
                row.completed_at = _utcnow()
                session.add(row)
            exists = session.exec(
                select(AuditEntry.id).where(AuditEntry.event_key == audit.event_key)
            ).first()
            if exists is None:
                session.add(audit)
            session.commit()

    def outbox_by_provider_id(self, provider_message_id: str) -> OutboxEntry | None:
        """The send a carrier's receipt refers to."""
        with Session(self._engine) as session:
            return session.exec(
                select(OutboxEntry).where(OutboxEntry.provider_message_id == provider_message_id)
            ).first()

    def audit_for(self, account_id: str) -> list[AuditEntry]:
        with Session(self._engine) as session:
            rows = session.exec(
                select(AuditEntry).where(AuditEntry.account_id == account_id).order_by(AuditEntry.id)  # type: ignore[arg-type]
            ).all()
            return list(rows)

    def outbox_for(self, account_id: str) -> list[OutboxEntry]:
        with Session(self._engine) as session:
            rows = session.exec(select(OutboxEntry).where(OutboxEntry.account_id == account_id)).all()
            return list(rows)
