"""The derived table ``account_outcomes``: every account's outcome, kept up to date from the audit log
past a watermark (``audit_log.id``), so that a report reads one row per account instead of the log.

``refresh_outcomes`` reads the audit rows past the watermark, folds again, from its whole history, each
account they touch (``kindly.analytics.outcomes.fold``), and replaces those accounts' rows. With no
watermark yet, or one written under other definitions (``OUTCOMES_VERSION``), it rebuilds the table
from a full scan, as ``rebuild_outcomes`` does; both give the same rows (``tests/test_outcomes.py``).

**Why the watermark trails by a grace period.** An audit row's id is taken when its insert runs but the
row becomes visible when its transaction commits, so on PostgreSQL a row may appear after rows with
higher ids. The watermark therefore only passes rows recorded (``recorded_at``) more than ``grace`` ago
(10 minutes: far longer than any transaction of the activities); newer rows are read again at the next
refresh, which costs a little and changes nothing, since an account is always folded from its whole
history.

Refreshes compute without a lock, then write under one (an advisory lock on PostgreSQL, the write
lock on SQLite) after checking that the watermark is still the one they started from; a refresh that
lost the race to another starts again from the new watermark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, text

from kindly.analytics.outcomes import FOLDED_KINDS, OUTCOMES_VERSION, AccountOutcome, AuditEvent, as_utc, fold
from kindly.store.audit import AUDIT_TABLE
from kindly.store.clock import utcnow
from kindly.store.outcomes import OUTCOME_TABLE, WATERMARK_TABLE

log = logging.getLogger(__name__)

WATERMARK = "account_outcomes"
DEFAULT_GRACE = timedelta(minutes=10)
FULL_SCAN_ABOVE = 20_000
"""Past this many touched accounts, one ordered scan of the log is cheaper than reading each."""
_CHUNK = 500
_REFRESH_LOCK_KEY = 0x6B696E646C7A
_ATTEMPTS = 5
_KINDS = tuple(str(kind) for kind in FOLDED_KINDS)
_a = AUDIT_TABLE.c
_EVENT_COLUMNS = (_a.account_id, _a.id, _a.at, _a.kind, _a.detail, _a.template)


@dataclass(frozen=True)
class Refreshed:
    """What a refresh did."""

    rebuilt: bool
    """A full rebuild (no watermark yet, other definitions, or asked for)."""
    audit_rows: int
    """Audit rows read past the watermark (a rebuild: the rows folded)."""
    accounts: int
    """Outcome rows written."""
    watermark: int
    seconds: float


@dataclass(frozen=True)
class _Mark:
    audit_id: int
    version: int


@dataclass(frozen=True)
class _Plan:
    outcomes: list[AccountOutcome]
    watermark: int
    rows: int
    full: bool


def refresh_outcomes(
    engine: Engine, *, grace: timedelta = DEFAULT_GRACE, now: datetime | None = None, rebuild: bool = False
) -> Refreshed:
    """Bring ``account_outcomes`` up to the audit log (blocking); ``rebuild`` folds every account again."""
    started = time.perf_counter()
    cutoff = (now or utcnow()) - grace
    for _ in range(_ATTEMPTS):
        mark = _read_mark(engine)
        full = rebuild or mark is None or mark.version != OUTCOMES_VERSION
        since = None if full or mark is None else _scan_since(engine, mark.audit_id, cutoff)
        plan = since if since is not None else _scan_all(engine, cutoff)
        if not plan.full and not plan.outcomes and mark is not None and plan.watermark == mark.audit_id:
            return _refreshed(plan, started)  # nothing new: no write, no lock
        if _write(engine, plan, mark):
            return _refreshed(plan, started)
    # Other refreshes kept moving the watermark: the table is as fresh as theirs, which is enough.
    log.warning("account_outcomes: %d refreshes in a row found another one had written first", _ATTEMPTS)
    return _refreshed(replace(plan, outcomes=[]), started)


def rebuild_outcomes(
    engine: Engine, *, grace: timedelta = DEFAULT_GRACE, now: datetime | None = None
) -> Refreshed:
    """Fold every account again from the whole audit log and replace the table."""
    return refresh_outcomes(engine, grace=grace, now=now, rebuild=True)


def load_outcomes(engine: Engine, columns: Iterable[str] | None = None) -> list[AccountOutcome]:
    """Every stored outcome (refresh first for an answer up to the audit log); only ``columns`` (and
    the account id) when named, the other fields left at their defaults."""
    o = OUTCOME_TABLE.c
    selected = list(OUTCOME_TABLE.c) if columns is None else [o.account_id, *(o[name] for name in columns)]
    names = [column.name for column in selected]
    with engine.connect() as connection:
        rows = connection.execute(select(*selected).order_by(o.account_id))
        return [AccountOutcome.from_record(dict(zip(names, row, strict=True))) for row in rows]


def stored_watermark(engine: Engine) -> int | None:
    mark = _read_mark(engine)
    return None if mark is None else mark.audit_id


def _refreshed(plan: _Plan, started: float) -> Refreshed:
    return Refreshed(
        rebuilt=plan.full,
        audit_rows=plan.rows,
        accounts=len(plan.outcomes),
        watermark=plan.watermark,
        seconds=round(time.perf_counter() - started, 3),
    )


def _read_mark(engine_or_connection: Engine | Connection) -> _Mark | None:
    w = WATERMARK_TABLE.c
    query = select(w.audit_id, w.version).where(w.name == WATERMARK)
    if isinstance(engine_or_connection, Engine):
        with engine_or_connection.connect() as connection:
            row = connection.execute(query).first()
    else:
        row = engine_or_connection.execute(query).first()
    return None if row is None else _Mark(audit_id=row.audit_id, version=row.version)


def _scan_all(engine: Engine, cutoff: datetime) -> _Plan:
    """Every account folded from one scan of the log in (account, time) order."""
    with engine.connect() as connection:
        watermark = connection.execute(select(func.max(_a.id)).where(_a.recorded_at <= cutoff)).scalar()
        query = select(*_EVENT_COLUMNS).where(_a.kind.in_(_KINDS)).order_by(_a.account_id, _a.at, _a.id)
        result = connection.execution_options(stream_results=True, yield_per=20_000).execute(query)
        outcomes, rows = _fold_rows(result)
    return _Plan(outcomes=outcomes, watermark=watermark or 0, rows=rows, full=True)


def _scan_since(engine: Engine, after: int, cutoff: datetime) -> _Plan | None:
    """The accounts touched past ``after``, each folded from its whole history; None when so many are
    touched that a full scan is cheaper."""
    with engine.connect() as connection:
        new = connection.execute(
            select(_a.id, _a.account_id, _a.kind, _a.recorded_at).where(_a.id > after)
        ).all()
        watermark = max((row.id for row in new if as_utc(row.recorded_at) <= cutoff), default=after)
        touched = sorted({row.account_id for row in new if row.kind in _KINDS})
        if len(touched) > FULL_SCAN_ABOVE:
            return None
        outcomes: list[AccountOutcome] = []
        for chunk in _chunks(touched):
            query = (
                select(*_EVENT_COLUMNS)
                .where(_a.account_id.in_(chunk), _a.kind.in_(_KINDS))
                .order_by(_a.account_id, _a.at, _a.id)
            )
            outcomes.extend(_fold_rows(connection.execute(query))[0])
    return _Plan(outcomes=outcomes, watermark=watermark, rows=len(new), full=False)


def _fold_rows(rows: Iterable[Any]) -> tuple[list[AccountOutcome], int]:
    """Rows in (account, time) order, folded account by account; and how many rows there were."""
    outcomes: list[AccountOutcome] = []
    count = 0
    for account_id, group in groupby(rows, key=lambda row: row[0]):
        events = [AuditEvent(row[1], row[2], row[3], row[4], row[5]) for row in group]  # ``at``: aware UTC
        count += len(events)
        outcomes.append(fold(account_id, events))
    return outcomes, count


def _write(engine: Engine, plan: _Plan, expected: _Mark | None) -> bool:
    """Replace the planned accounts' rows and move the watermark, unless another refresh moved it since
    the plan was made (then False: plan again)."""
    with engine.begin() as connection:
        _lock(connection)
        if _read_mark(connection) != expected:
            return False
        o = OUTCOME_TABLE.c
        if plan.full:
            connection.execute(delete(OUTCOME_TABLE))
        else:
            for chunk in _chunks([outcome.account_id for outcome in plan.outcomes]):
                connection.execute(delete(OUTCOME_TABLE).where(o.account_id.in_(chunk)))
        records = [outcome.to_record() for outcome in plan.outcomes]
        for start in range(0, len(records), 5_000):
            connection.execute(insert(OUTCOME_TABLE), records[start : start + 5_000])
        w = WATERMARK_TABLE.c
        connection.execute(delete(WATERMARK_TABLE).where(w.name == WATERMARK))
        connection.execute(
            insert(WATERMARK_TABLE),
            {
                "name": WATERMARK,
                "audit_id": plan.watermark,
                "version": OUTCOMES_VERSION,
                "refreshed_at": utcnow(),
            },
        )
    return True


def _lock(connection: Connection) -> None:
    """One refresh writes at a time: an advisory lock on PostgreSQL, the write lock on SQLite (taken at
    the transaction's start, so that a refresh never fails upgrading a read lock)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _REFRESH_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
