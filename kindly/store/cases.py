"""The specialist team's cases: accounts handed over for a person's judgement, with the team's notes.

* **One open case per account.** The hand-off activity may be retried, and an account may be handed over
  again while its case is open (a second reason, a later run): ``add`` returns the case that is there,
  keyed first by the hand-off's idempotency key, then by the account's open case. A unique index over
  the open cases' accounts keeps it so under concurrent writers too.
* **A case ends once.** ``resolve`` and ``close_for_account`` are conditional updates of an open case, so
  two specialists resolving at once cannot both succeed, and a resolution is never overwritten.
* **Notes are bounded.** At most ``MAX_TEXT`` characters: a note is a record of what was done, not a
  place for documents.

Amounts are exact decimals as text, as in ``kindly.store.work_queue``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Index, Select, Table, and_, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from kindly.keyring import KeyRing

OPEN_CASE_INDEX = "ux_specialist_case_open_account"
_OPEN_SQL = "closed_at IS NULL"
MAX_TEXT = 2000
"""The longest note or resolution, in characters."""

UNKNOWN_KIND = "unknown"
"""The kind of a case handed over by a run from before case kinds (``kindly.domain.cases.CaseKind``)."""
RESOLVED = "resolved"
"""``closed_reason`` of a case a specialist resolved."""


class SpecialistCase(SQLModel, table=True):
    """One account in the specialist team's hands: why, what it owes, and how the case ended."""

    __tablename__ = "specialist_case"
    __table_args__ = (
        Index(
            OPEN_CASE_INDEX,
            "account_id",
            unique=True,
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, index=True)
    account_id: str = Field(index=True)
    kind: str = Field(index=True)
    reason: str
    amount_due: str
    currency: str
    # NULL for cases of runs from before the queue (they sent none).
    due_date: date | None = None
    timezone: str | None = None
    locale: str | None = None
    segment: str | None = None
    created_at: datetime = Field(index=True)
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    closed_at: datetime | None = None
    closed_reason: str | None = None
    """``resolved``, or what ``close_for_account`` was told (``repaid``, ...)."""


class CaseNote(SQLModel, table=True):
    """A specialist's note on a case, in the order written."""

    __tablename__ = "case_note"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(index=True)
    author: str
    at: datetime
    text: str
    """Sealed under the key ring in the table (a note may hold what a customer confided); in clear on the
    notes ``SpecialistCases.notes`` returns."""


@dataclass(frozen=True)
class NewCase:
    """A case as the account's escalation hands it over (the hand-off activity's input, flattened); the
    facts are None for runs that sent none, the kind too (stored as ``UNKNOWN_KIND``)."""

    idempotency_key: str
    account_id: str
    kind: str | None
    reason: str
    amount_due: Decimal
    currency: str
    due_date: date | None = None
    timezone: str | None = None
    locale: str | None = None
    segment: str | None = None


class CaseUnavailable(Exception):
    """A case that does not exist, or that has ended and cannot be resolved again; the message says which."""


SPECIALIST_CASE_TABLE: Table = SpecialistCase.__table__  # type: ignore[attr-defined]
CASE_NOTE_TABLE: Table = CaseNote.__table__  # type: ignore[attr-defined]
_c = SPECIALIST_CASE_TABLE.c
_n = CASE_NOTE_TABLE.c


def _bounded(field: str, value: str) -> str:
    """``value`` stripped, when it is not empty and at most ``MAX_TEXT`` characters; else ``ValueError``
    naming the field."""
    stripped = value.strip()
    if not stripped:
        raise ValueError(f"{field}: must not be empty")
    if len(stripped) > MAX_TEXT:
        raise ValueError(f"{field}: at most {MAX_TEXT} characters, got {len(stripped)}")
    return stripped


class SpecialistCases:
    """The cases and their notes, for the hand-off activity that opens them and the console's specialists.

    Every method is one short transaction, blocking: async callers run them in a thread."""

    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self._engine = engine
        self._keyring = keyring

    def add(self, case: NewCase, at: datetime) -> SpecialistCase:
        """The case under ``case.idempotency_key``; else the account's open case; else a new one, opened
        now. The insert comes first and skips any conflict, so retries and a racing writer agree."""
        row = {
            "idempotency_key": case.idempotency_key,
            "account_id": case.account_id,
            "kind": case.kind or UNKNOWN_KIND,
            "reason": case.reason,
            "amount_due": str(case.amount_due),
            "currency": case.currency,
            "due_date": case.due_date,
            "timezone": case.timezone,
            "locale": case.locale,
            "segment": case.segment,
            "created_at": at,
        }
        with self._engine.begin() as connection:
            _insert_unless_present(connection, SPECIALIST_CASE_TABLE, row)
            keyed = connection.execute(
                select(SPECIALIST_CASE_TABLE).where(_c.idempotency_key == case.idempotency_key)
            ).first()
            if keyed is not None:
                return _case(keyed)
            return _case(connection.execute(_open_case_of(case.account_id)).one())

    def open_cases(self, kind: str | None, limit: int, offset: int = 0) -> list[SpecialistCase]:
        """A page of the open cases (of one kind, or all), the oldest first: each waited longest."""
        query = select(SPECIALIST_CASE_TABLE).where(_c.closed_at.is_(None))
        if kind is not None:
            query = query.where(_c.kind == kind)
        query = query.order_by(_c.created_at, _c.id).limit(limit).offset(offset)
        with self._engine.connect() as connection:
            return [_case(row) for row in connection.execute(query)]

    def count_open_by_kind(self) -> dict[str, int]:
        query = (
            select(_c.kind, func.count()).where(_c.closed_at.is_(None)).group_by(_c.kind).order_by(_c.kind)
        )
        with self._engine.connect() as connection:
            return {kind: count for kind, count in connection.execute(query)}

    def get(self, case_id: int) -> SpecialistCase | None:
        with self._engine.connect() as connection:
            return _get(connection, case_id)

    def case_for_account(self, account_id: str) -> SpecialistCase | None:
        """The account's open case, if any."""
        with self._engine.connect() as connection:
            row = connection.execute(_open_case_of(account_id)).first()
            return None if row is None else _case(row)

    def notes(self, case_id: int) -> list[CaseNote]:
        """The case's notes, the oldest first."""
        query = select(CASE_NOTE_TABLE).where(_n.case_id == case_id).order_by(_n.at, _n.id)
        with self._engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        return [
            CaseNote.model_validate({**row, "text": self._keyring.open_text(row["text"])}) for row in rows
        ]

    def add_note(self, case_id: int, author: str, text: str, at: datetime) -> CaseNote:
        """Add a note to a case, open or ended (what happened after is worth writing down too)."""
        body = _bounded("text", text)
        with self._engine.begin() as connection:
            # The insert first (SQLite takes its write lock with it); a missing case rolls it back.
            added = connection.execute(
                CASE_NOTE_TABLE.insert()
                .values(case_id=case_id, author=author, at=at, text=self._keyring.seal_text(body))
                .returning(*CASE_NOTE_TABLE.c)
            ).one()
            if _get(connection, case_id) is None:
                raise CaseUnavailable(f"there is no case {case_id}")
        return CaseNote.model_validate({**dict(added._mapping), "text": body})

    def resolve(self, case_id: int, by: str, resolution: str, at: datetime) -> SpecialistCase:
        """End the case with its resolution; ``CaseUnavailable`` when it has ended already."""
        outcome = _bounded("resolution", resolution)
        with self._engine.begin() as connection:
            resolved = connection.execute(
                update(SPECIALIST_CASE_TABLE)
                .where(_c.id == case_id, _c.closed_at.is_(None))
                .values(
                    resolved_at=at, resolved_by=by, resolution=outcome, closed_at=at, closed_reason=RESOLVED
                )
            )
            case = _get(connection, case_id)
        if case is None:
            raise CaseUnavailable(f"there is no case {case_id}")
        if resolved.rowcount != 1:
            raise CaseUnavailable(_ended(case))
        return case

    def close_for_account(self, account_id: str, reason: str, at: datetime) -> int:
        """Close the account's open case (it was repaid, settled, closed): how many were open (0 or 1)."""
        with self._engine.begin() as connection:
            closed = connection.execute(
                update(SPECIALIST_CASE_TABLE)
                .where(_c.account_id == account_id, _c.closed_at.is_(None))
                .values(closed_at=at, closed_reason=reason)
            )
            return closed.rowcount


def _insert_unless_present(connection: Connection, table: Table, row: dict[str, Any]) -> None:
    """Insert the row unless it breaks a unique index (its key, or the account's open case): ``ON CONFLICT
    DO NOTHING`` with no target covers both, and on PostgreSQL waits for a concurrent writer of either.
    Elsewhere, a savepoint that a duplicate rolls back."""
    dialect = connection.dialect.name
    if dialect in ("sqlite", "postgresql"):
        statement = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(table)
        connection.execute(statement.on_conflict_do_nothing(), row)
        return
    try:
        with connection.begin_nested():
            connection.execute(insert(table), row)
    except IntegrityError:
        pass


def _open_case_of(account_id: str) -> Select[Any]:
    return select(SPECIALIST_CASE_TABLE).where(and_(_c.account_id == account_id, _c.closed_at.is_(None)))


def _get(connection: Connection, case_id: int) -> SpecialistCase | None:
    row = connection.execute(select(SPECIALIST_CASE_TABLE).where(_c.id == case_id)).first()
    return None if row is None else _case(row)


def _case(row: Any) -> SpecialistCase:
    return SpecialistCase.model_validate(dict(row._mapping))


def _ended(case: SpecialistCase) -> str:
    at = case.closed_at
    when = "" if at is None else f" at {at:%Y-%m-%d %H:%M} UTC"
    if case.closed_reason == RESOLVED:
        return f"case {case.id} was resolved by {case.resolved_by}{when}"
    return f"case {case.id} was closed ({case.closed_reason}){when}"
