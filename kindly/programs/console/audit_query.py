"""Reading and writing the audit log for the console: its filtered pages, newest first, and the one row
each console action writes.

Pages are keyset-paginated on ``(at, id)``, newest first: every page is one indexed query of at most
``limit + 1`` rows, however long the log, and a row written while someone reads never shifts a page.
Compliance asks three questions most (``QUICK``): what was sent, what was held back and why
(deferrals and skips name their reasons), and what was refused (rejected signals, failed sends, and
console actions refused or forbidden).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from kindly.domain.contract import TimelineKind
from kindly.store import AuditEntry, AuditLog
from kindly.store.audit import CONSOLE_ACTION

ACCEPTED, REFUSED, FORBIDDEN, FAILED = "accepted", "refused", "forbidden", "failed"
"""The outcomes of a console action: taken; refused by the account (or its form); not allowed for the
user's role (nothing reached the workflow); not answered (no worker in time, Temporal unreachable)."""

REFUSED_KINDS = (TimelineKind.SIGNAL_REJECTED.value, TimelineKind.SMS_FAILED.value)
QUICK: dict[str, tuple[str, ...]] = {
    "sent": (TimelineKind.SMS_SENT.value,),
    "deferred": (TimelineKind.DEFERRED.value, TimelineKind.SKIPPED.value),
    "refused": (),  # its own condition: ``_refused``
}


@dataclass(frozen=True)
class AuditFilter:
    account_id: str | None = None
    kinds: tuple[str, ...] = ()
    actor: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    refused: bool = False


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: the last row shown."""

    at: datetime
    id: int

    def encode(self) -> str:
        return f"{_utc(self.at).strftime('%Y%m%dT%H%M%S.%f')}~{self.id}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """The cursor a link carried; None for none or a mangled one (the first page)."""
        if not text:
            return None
        at, _, row = text.partition("~")
        try:
            return cls(datetime.strptime(at, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC), int(row))
        except ValueError:
            return None


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEntry]
    next: Cursor | None = None


def audit_page(engine: Engine, wanted: AuditFilter, after: Cursor | None, limit: int) -> AuditPage:
    """The rows ``wanted`` selects, newest first, from ``after`` on: at most ``limit``."""
    clauses = _clauses(wanted)
    if after is not None:
        at = col(AuditEntry.at)
        clauses.append(or_(at < after.at, and_(at == after.at, col(AuditEntry.id) < after.id)))
    statement = (
        select(AuditEntry)
        .where(*clauses)
        .order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc())
        .limit(limit + 1)
    )
    with Session(engine) as session:
        rows = list(session.exec(statement).all())
    if len(rows) <= limit:
        return AuditPage(rows)
    last = rows[limit - 1]
    assert last.id is not None
    return AuditPage(rows[:limit], Cursor(_utc(last.at), last.id))


def _clauses(wanted: AuditFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if wanted.account_id:
        clauses.append(col(AuditEntry.account_id) == wanted.account_id)
    if wanted.kinds:
        clauses.append(col(AuditEntry.kind).in_(wanted.kinds))
    if wanted.actor:
        clauses.append(col(AuditEntry.actor) == wanted.actor)
    if wanted.since is not None:
        clauses.append(col(AuditEntry.at) >= _utc(wanted.since))
    if wanted.before is not None:
        clauses.append(col(AuditEntry.at) < _utc(wanted.before))
    if wanted.refused:
        clauses.append(_refused())
    return clauses


def _refused() -> ColumnElement[bool]:
    return or_(
        col(AuditEntry.kind).in_(REFUSED_KINDS),
        and_(col(AuditEntry.kind) == CONSOLE_ACTION, col(AuditEntry.outcome).in_((REFUSED, FORBIDDEN))),
    )


def record_action(
    log: AuditLog, *, actor: str, account_id: str, detail: str, outcome: str, at: datetime
) -> AuditEntry:
    """Write the one audit row of a console action (its own key: a person's action happens once)."""
    entry = AuditEntry(
        event_key=f"console:{uuid.uuid4()}",
        account_id=account_id,
        at=at,
        kind=CONSOLE_ACTION,
        detail=detail,
        outcome=outcome,
        actor=actor,
    )
    log.append([entry])
    return entry


def _utc(value: datetime) -> datetime:
    """Instants as the database compares them: UTC (SQLite gives them back without an offset)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
