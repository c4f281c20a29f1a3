"""The application database: the audit log, the send outbox and the policies workers run (sqlmodel;
SQLite or PostgreSQL).

Tables are created on first use. Every write is idempotent by a natural key, because activities
that write them may be retried: an audit row by its event key, an outbox row by its idempotency key.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Executable,
    Table,
    bindparam,
    case,
    event,
    insert,
    inspect,
    make_url,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Field, Session, SQLModel, create_engine, select

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuditEntry(SQLModel, table=True):
    """One decision or action for compliance: what happened to which account, when and why."""

    __tablename__ = "audit_log"

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
    recorded_at: datetime = Field(default_factory=_utcnow)


DELIVERY_RECEIPT = "delivery_receipt"
"""The audit kind of a carrier's delivery receipt (``outcome``: its status); the only kind that is not a
workflow's ``TimelineKind``, since receipts reach the API, not the workflow."""


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
    created_at: datetime = Field(default_factory=_utcnow)
    completed_at: datetime | None = None


ANSWER_LOST = "; an attempt's answer was lost"
"""How a cancelled row's detail ends when an attempt may have delivered the message (``cancel``)."""


class WorkerPolicy(SQLModel, table=True):
    """A contact policy a worker started with (``kindly.domain.policy.registry``): what starters check theirs
    against. Configuration only, no personal data."""

    __tablename__ = "worker_policy"

    fingerprint: str = Field(primary_key=True, max_length=16)
    policies: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    first_registered_at: datetime
    last_registered_at: datetime = Field(index=True)


_SCHEMA_LOCK_KEY = 0x6B696E646C79  # "kindly"


def lock_schema(connection: Connection) -> None:
    """Hold the schema lock until the transaction ends, so one process at a time changes the schema:
    an advisory lock on PostgreSQL, the write lock on SQLite (the transaction must not have begun)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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
        lock_schema(connection)
        SQLModel.metadata.create_all(connection)
        # create_all adds no index to a table that exists: those added since (the audit log's ``at``).
        for index in _ADDED_INDEXES:
            index.create(connection, checkfirst=True)
        add_missing_columns(connection, ADDED_COLUMNS)
    return engine


ADDED_COLUMNS = (("outbox", "detail"),)
"""Columns added to this module's tables after their first release, which ``create_all`` does not add
to an existing table: (table, column). Each is nullable, so adding it to a table with rows is instant."""


def missing_columns(connection: Connection, columns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Those of ``columns`` (table, column) the database's tables lack."""
    inspector = inspect(connection)
    present = {table: {c["name"] for c in inspector.get_columns(table)} for table, _ in columns}
    return [(table, column) for table, column in columns if column not in present[table]]


def add_missing_columns(connection: Connection, columns: Sequence[tuple[str, str]]) -> None:
    """``ALTER TABLE … ADD COLUMN`` for each of ``columns`` the database lacks; the caller holds the
    schema lock (``lock_schema``), so concurrently starting processes add a column once. A process of
    the older version keeps working beside the new column: it names its columns in every statement,
    and its inserts leave the column NULL."""
    for table_name, column_name in missing_columns(connection, columns):
        column = SQLModel.metadata.tables[table_name].c[column_name]
        assert column.nullable, f"{table_name}.{column_name}: only nullable columns can be added"
        preparer = connection.dialect.identifier_preparer
        connection.exec_driver_sql(
            f"ALTER TABLE {preparer.quote(table_name)} ADD COLUMN {preparer.quote(column_name)} "
            f"{column.type.compile(dialect=connection.dialect)}"
        )
        log.info("added column %s.%s to the database", table_name, column_name)


_AUDIT: Table = AuditEntry.__table__  # type: ignore[attr-defined]
_ADDED_INDEXES = [index for index in _AUDIT.indexes if index.name == "ix_audit_log_at"]
_OUTBOX: Table = OutboxEntry.__table__  # type: ignore[attr-defined]
# The columns an insert writes: the audit row's id is the database's.
_AUDIT_COLUMNS = tuple(column.name for column in _AUDIT.columns if column.name != "id")
_OUTBOX_COLUMNS = tuple(column.name for column in _OUTBOX.columns)
# Statements on the path of every SMS, built once (SQLAlchemy caches their compiled form).
_COUNT_ATTEMPT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.idempotency_key == bindparam("key"))
    .values(
        attempts=_OUTBOX.c.attempts + 1,
        status=case((_OUTBOX.c.status == "pending", "sending"), else_=_OUTBOX.c.status),
    )
)
_COUNT_ATTEMPT_RETURNING = _COUNT_ATTEMPT.returning(*_OUTBOX.c)
# The SET clause comes from the parameters: status, provider_message_id, completed_at.
_COMPLETE_OUTBOX = update(_OUTBOX).where(_OUTBOX.c.idempotency_key == bindparam("key"))


def _values(entry: SQLModel, columns: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in columns}


def _audit_rows(entries: Iterable[AuditEntry]) -> list[dict[str, Any]]:
    return [_values(entry, _AUDIT_COLUMNS) for entry in entries]


def insert_ignoring_duplicates(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: tuple[str, ...]
) -> int:
    """Insert the rows whose ``keys`` (the columns of a unique constraint) are new; how many were.

    On SQLite and PostgreSQL one statement, ``INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING``: a
    row whose key exists, or that a concurrent transaction inserts first, is skipped instead of failing
    (PostgreSQL makes the later writer wait for the first to commit or roll back), so concurrent writers
    of one key all succeed and the row is written once; the returned rows count the new ones. Other
    databases insert row by row, each in a savepoint that a duplicate key rolls back. A key repeated
    within ``rows`` keeps its first row. Runs in the caller's transaction.
    """
    unique: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        unique.setdefault(tuple(row[name] for name in keys), row)
    if not unique:
        return 0
    dialect = connection.dialect.name
    if dialect in ("sqlite", "postgresql"):
        statement = _insert_ignoring_statement(dialect, table, keys)
        return len(connection.execute(statement, list(unique.values())).all())
    return _insert_each_ignoring_duplicates(connection, table, list(unique.values()), keys)


@functools.cache
def _insert_ignoring_statement(dialect: str, table: Table, keys: tuple[str, ...]) -> Executable:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING keys[0]`` for SQLite or PostgreSQL."""
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    return insert(table).on_conflict_do_nothing(index_elements=list(keys)).returning(table.c[keys[0]])


def _insert_each_ignoring_duplicates(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: tuple[str, ...]
) -> int:
    """The portable ``insert_ignoring_duplicates``: a savepoint per row; an integrity error whose key
    is there (now) skips the row, any other (a missing value, say) is raised."""
    added = 0
    for row in rows:
        try:
            with connection.begin_nested():
                connection.execute(insert(table), row)
        except IntegrityError:
            exists = select(table.c[keys[0]]).where(*(table.c[name] == row[name] for name in keys))
            if connection.execute(exists).first() is None:
                raise
            continue
        added += 1
    return added


class AuditStore:
    """Synchronous access to the audit log and outbox; activities call it from a thread.

    The writes on an SMS's path (``append``, ``claim``, ``complete``) are each one transaction of a few
    Core statements: no ORM session, no read before a write. Their idempotency rests on the unique keys
    (``INSERT ... ON CONFLICT DO NOTHING``) and on updates computed by the database, so concurrent
    writers of the same key (a retried activity beside its timed-out first attempt) neither fail nor
    lose a write.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

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
            return insert_ignoring_duplicates(connection, _AUDIT, _audit_rows(entries), ("event_key",))

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
                insert_ignoring_duplicates(connection, _AUDIT, _audit_rows(decisions), ("event_key",))
            insert_ignoring_duplicates(
                connection, _OUTBOX, [_values(entry, _OUTBOX_COLUMNS)], ("idempotency_key",)
            )
            if connection.dialect.update_returning:
                row = connection.execute(_COUNT_ATTEMPT_RETURNING, {"key": key}).one()
            else:  # pragma: no cover - SQLite and PostgreSQL return the row
                connection.execute(_COUNT_ATTEMPT, {"key": key})
                row = connection.execute(_OUTBOX.select().where(_OUTBOX.c.idempotency_key == key)).one()
        return OutboxEntry(**row._mapping)

    def complete(
        self, idempotency_key: str, status: str, provider_message_id: str | None, audit: AuditEntry
    ) -> None:
        """Mark the outbox row done and write its audit row (unless its event key exists) in one
        transaction. Without an outbox row the audit row is still written."""
        with self._engine.begin() as connection:
            connection.execute(
                _COMPLETE_OUTBOX,
                {
                    "key": idempotency_key,
                    "status": status,
                    "provider_message_id": provider_message_id,
                    "completed_at": _utcnow(),
                },
            )
            insert_ignoring_duplicates(connection, _AUDIT, _audit_rows([audit]), ("event_key",))

    def release(self, idempotency_key: str) -> None:
        """The attempt in flight was refused (the gateway did not take the message): back to ``pending``."""
        with self._engine.begin() as connection:
            connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.idempotency_key == idempotency_key, _OUTBOX.c.status == "sending")
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
        row = {
            **_values(entry, _OUTBOX_COLUMNS),
            "status": "cancelled",
            "detail": reason,
            "completed_at": _utcnow(),
        }
        with self._engine.begin() as connection:
            if decisions:
                insert_ignoring_duplicates(connection, _AUDIT, _audit_rows(decisions), ("event_key",))
            insert_ignoring_duplicates(connection, _OUTBOX, [row], ("idempotency_key",))
            status, detail = connection.execute(
                select(_OUTBOX.c.status, _OUTBOX.c.detail)
                .where(_OUTBOX.c.idempotency_key == key)
                .with_for_update()
            ).one()
            if status == "cancelled":  # cancelled before (a retried call): the same answer
                return "unknown" if (detail or "").endswith(ANSWER_LOST) else "cancelled"
            if status in ("sent", "rejected"):
                return str(status)
            unknown = status == "sending"
            connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.idempotency_key == key)
                .values(
                    status="cancelled",
                    detail=f"{reason}{ANSWER_LOST}" if unknown else reason,
                    completed_at=_utcnow(),
                )
            )
        return "unknown" if unknown else "cancelled"

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
