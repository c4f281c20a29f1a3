"""The phone team's work queue: the call tasks accounts' escalations add, which agents claim, call and close.

* **One open task per account.** A new task for an account closes its older open ones (``superseded``),
  and a unique index over the open tasks' accounts keeps it so: two agents never call the same customer.
* **Claims are leases.** ``claim`` is one conditional ``UPDATE``, so of two agents claiming a task at once
  exactly one wins (PostgreSQL re-checks the condition on the row the winner just updated; SQLite runs
  writers one at a time). A lease that runs out (a closed browser, a break) frees the task for another
  without anyone releasing it. An agent holds at most one live lease: on PostgreSQL a per-agent advisory
  lock serialises that agent's claims, whose check would otherwise not see each other's rows.
* **The number stays sealed.** ``phone_encrypted`` is the number under the key ring
  (``kindly.store.phones.seal_phone``); ``phone_for`` opens it only for the agent holding the task's live
  lease, so listing the queue never shows a number.
* **Priority in SQL.** ``open_tasks`` orders and pages in the database: a due call-back, a broken
  promise, the larger amount, the older due date, the older task. A call-back not yet due is not listed:
  the customer asked for that time.
* **Idempotent.** ``add`` is keyed by the hand-off's idempotency key, since the activity that adds may be
  retried, even beside its own first attempt.

Amounts are exact decimals as text (as in ``payment_notice``: SQLite passes a Numeric through float); the
queue orders by their numeric value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Numeric,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from kindly.domain.contract import CallOutcomeKind
from kindly.keyring import KeyRing
from kindly.store.call_tasks import (
    OUTCOME,
    SUPERSEDED,
    CallRecord,
    CallTask,
    NewCallTask,
    TaskUnavailable,
)
from kindly.store.phones import seal_phone
from kindly.store.writes import insert_ignoring_duplicates

CALL_TASK_TABLE: Table = CallTask.__table__  # type: ignore[attr-defined]
_c = CALL_TASK_TABLE.c
_OUTCOMES = frozenset(kind.value for kind in CallOutcomeKind)


def _is_open() -> ColumnElement[bool]:
    return _c.closed_at.is_(None)


def _listed(now: datetime) -> ColumnElement[bool]:
    """Open, not a call-back that is not yet due, and not past the end of its day's window."""
    return and_(_is_open(), _in_time(now))


def _in_time(now: datetime) -> ColumnElement[bool]:
    return and_(
        or_(_c.call_back_at.is_(None), _c.call_back_at <= now),
        or_(_c.offered_until.is_(None), _c.offered_until > now),
    )


def _held(agent: str, now: datetime) -> ColumnElement[bool]:
    return and_(_is_open(), _c.claimed_by == agent, _c.claimed_until > now)


_PRIORITY = (
    case((_c.call_back_at.is_not(None), 0), else_=1),  # listed call-backs are due ones
    case((_c.promise_broken, 0), else_=1),
    cast(_c.amount_due, Numeric).desc(),
    _c.due_date.asc().nulls_last(),
    _c.created_at.asc(),
    _c.id.asc(),
)


class WorkQueue:
    """The call tasks, for the hand-off activity that adds them and the console whose agents work them.

    Every method is one short transaction, blocking: async callers run them in a thread."""

    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self._engine = engine
        self._keyring = keyring

    def add(self, task: NewCallTask, at: datetime) -> CallTask:
        """The task under ``task.idempotency_key``, added now unless it exists (then as it is now).

        A new task closes the account's older open tasks (``superseded``) in the same transaction; an
        existing key closes nothing, so a late retry of an older hand-off cannot close a newer task. The
        first statement writes (SQLite takes its write lock then, before anything is read)."""
        row = _new_row(task, seal_phone(self._keyring, task.phone), at)
        key = task.idempotency_key
        with self._engine.begin() as connection:
            older = and_(_c.account_id == task.account_id, _is_open(), _c.idempotency_key != key)
            known = exists().where(_c.idempotency_key == key)
            connection.execute(
                update(CALL_TASK_TABLE).where(older, ~known).values(closed_at=at, closed_reason=SUPERSEDED)
            )
            insert_ignoring_duplicates(connection, CALL_TASK_TABLE, [row], ("idempotency_key",))
            return _task(connection.execute(select(CALL_TASK_TABLE).where(_c.idempotency_key == key)).one())

    def open_tasks(self, now: datetime, limit: int, offset: int = 0) -> list[CallTask]:
        """A page of the open tasks, the most urgent first (the module's order); claimed ones included,
        with their holder, so a supervisor sees who works what."""
        query = select(CALL_TASK_TABLE).where(_listed(now)).order_by(*_PRIORITY).limit(limit).offset(offset)
        with self._engine.connect() as connection:
            return [_task(row) for row in connection.execute(query)]

    def count_open(self, now: datetime) -> int:
        with self._engine.connect() as connection:
            count: int = connection.execute(
                select(func.count()).select_from(CALL_TASK_TABLE).where(_listed(now))
            ).scalar_one()
            return count

    def get(self, task_id: int) -> CallTask | None:
        with self._engine.connect() as connection:
            return _get(connection, task_id)

    def held_by(self, agent: str, now: datetime) -> CallTask | None:
        """The open task ``agent`` holds a live lease on, if any."""
        with self._engine.connect() as connection:
            row = connection.execute(select(CALL_TASK_TABLE).where(_held(agent, now))).first()
            return None if row is None else _task(row)

    def claim(self, task_id: int, agent: str, now: datetime, lease: timedelta) -> CallTask:
        """Hold the task for ``lease`` from ``now``; renews the agent's own lease. ``TaskUnavailable``
        when it is closed, a call-back not yet due, held by another agent, or the agent holds another."""
        until = now + lease
        other = CALL_TASK_TABLE.alias("other")
        holds_another = exists().where(
            other.c.closed_at.is_(None),
            other.c.claimed_by == agent,
            other.c.claimed_until > now,
            other.c.id != task_id,
        )
        free = or_(_c.claimed_by.is_(None), _c.claimed_until <= now, _c.claimed_by == agent)
        due = _in_time(now)
        with self._engine.begin() as connection:
            _serialise_agent(connection, agent)
            claimed = connection.execute(
                update(CALL_TASK_TABLE)
                .where(_c.id == task_id, _is_open(), free, due, ~holds_another)
                .values(claimed_by=agent, claimed_until=until)
            )
            task = _get(connection, task_id)
            if claimed.rowcount == 1 and task is not None:
                return task
            held = connection.execute(
                select(CALL_TASK_TABLE).where(_held(agent, now), _c.id != task_id)
            ).first()
            raise _refusal(task_id, task, agent, now, None if held is None else _task(held))

    def release(self, task_id: int, agent: str, now: datetime) -> bool:
        """Give the task back to the queue; False when ``agent`` held no lease on it (or it is closed)."""
        with self._engine.begin() as connection:
            released = connection.execute(
                update(CALL_TASK_TABLE)
                .where(_c.id == task_id, _held(agent, now))
                .values(claimed_by=None, claimed_until=None)
            )
            return released.rowcount == 1

    def record_outcome(self, task_id: int, agent: str, outcome: str, now: datetime) -> CallTask:
        """Close the task with the call's outcome (a ``CallOutcomeKind`` value); only the agent holding
        its live lease may, so an outcome always comes from whoever made the call.

        The account may have superseded the task meanwhile: it takes the outcome first and may add its next
        task at once (a no-answer's next attempt), before the console records it here. The held task then
        still takes its outcome, so that the calls the regimes' limits count are all recorded."""
        if outcome not in _OUTCOMES:
            raise ValueError(f"outcome: one of {', '.join(sorted(_OUTCOMES))}, not {outcome!r}")
        still_held = and_(
            _c.claimed_by == agent,
            _c.claimed_until > now,
            _c.outcome.is_(None),
            or_(_is_open(), _c.closed_reason == SUPERSEDED),
        )
        with self._engine.begin() as connection:
            recorded = connection.execute(
                update(CALL_TASK_TABLE)
                .where(_c.id == task_id, still_held)
                .values(
                    outcome=outcome,
                    outcome_at=now,
                    outcome_by=agent,
                    closed_at=func.coalesce(_c.closed_at, now),
                    closed_reason=func.coalesce(_c.closed_reason, OUTCOME),
                    claimed_until=None,
                )
            )
            task = _get(connection, task_id)
            if recorded.rowcount == 1 and task is not None:
                return task
            raise _not_held(task_id, task, agent)

    def close_for_account(self, account_id: str, reason: str, now: datetime) -> int:
        """Close the account's open tasks (it was repaid, settled, closed): how many were open."""
        with self._engine.begin() as connection:
            closed = connection.execute(
                update(CALL_TASK_TABLE)
                .where(_c.account_id == account_id, _is_open())
                .values(closed_at=now, closed_reason=reason)
            )
            return closed.rowcount

    def phone_for(self, task_id: int, agent: str, now: datetime) -> str | None:
        """The task's number, for the agent holding its live lease only; None for anyone else."""
        query = select(_c.phone_encrypted).where(_c.id == task_id, _held(agent, now))
        with self._engine.connect() as connection:
            sealed = connection.execute(query).scalar_one_or_none()
        return None if sealed is None else self._keyring.open_text(sealed)

    def call_history(self, account_ids: Sequence[str], since: datetime) -> dict[str, list[CallRecord]]:
        """Each account's recorded calls since ``since``, oldest first (an empty list for none): what the
        console checks a regime's call limits against before an agent calls."""
        history: dict[str, list[CallRecord]] = {account_id: [] for account_id in account_ids}
        if not history:
            return history
        query = (
            select(_c.account_id, _c.outcome_at, _c.outcome)
            .where(_c.account_id.in_(list(history)), _c.outcome.is_not(None), _c.outcome_at >= since)
            .order_by(_c.outcome_at, _c.id)
        )
        with self._engine.connect() as connection:
            for account_id, at, outcome in connection.execute(query):
                history[account_id].append(CallRecord(at=at, connected=outcome != CallOutcomeKind.NO_ANSWER))
        return history


def _new_row(task: NewCallTask, sealed_phone: str, at: datetime) -> dict[str, Any]:
    """The row of a new task: the number sealed in place of the number, the amount as exact text."""
    row = {name: value for name, value in asdict(task).items() if name != "phone"}
    return row | {"amount_due": str(task.amount_due), "phone_encrypted": sealed_phone, "created_at": at}


def _serialise_agent(connection: Connection, agent: str) -> None:
    """On PostgreSQL, hold a lock of the agent's for the transaction: two claims of one agent's (two tabs)
    then run one after the other, and the second sees the first's lease. SQLite runs every write
    statement alone anyway."""
    if connection.dialect.name == "postgresql":
        digest = hashlib.sha256(f"call_task/{agent}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _get(connection: Connection, task_id: int) -> CallTask | None:
    row = connection.execute(select(CALL_TASK_TABLE).where(_c.id == task_id)).first()
    return None if row is None else _task(row)


def _task(row: Any) -> CallTask:
    return CallTask.model_validate(dict(row._mapping))


def _refusal(
    task_id: int, task: CallTask | None, agent: str, now: datetime, held: CallTask | None
) -> TaskUnavailable:
    """Why a claim matched no row, from the row as it is now."""
    if task is None:
        return TaskUnavailable(f"there is no task {task_id}")
    if task.closed_at is not None:
        return TaskUnavailable(f"task {task_id} is closed ({task.closed_reason})")
    until = task.claimed_until
    if task.claimed_by not in (None, agent) and until is not None and until > now:
        return TaskUnavailable(
            f"task {task_id} is claimed by {task.claimed_by} until {until:%H:%M} UTC",
            holder=task.claimed_by,
            until=until,
        )
    offered_until = task.offered_until
    if offered_until is not None and offered_until <= now:
        return TaskUnavailable(
            f"task {task_id} was for a call by {offered_until:%Y-%m-%d %H:%M} UTC; the account plans its next"
        )
    if task.call_back_at is not None and task.call_back_at > now:
        return TaskUnavailable(f"task {task_id} is a call-back due at {task.call_back_at:%Y-%m-%d %H:%M} UTC")
    if held is not None:
        return TaskUnavailable(
            f"you already hold task {held.id}: release it or record its outcome first", held_task=held.id
        )
    return TaskUnavailable(f"task {task_id} could not be claimed; try again")


def _not_held(task_id: int, task: CallTask | None, agent: str) -> TaskUnavailable:
    """Why an outcome matched no row: only the live holder of an open task records one."""
    if task is None:
        return TaskUnavailable(f"there is no task {task_id}")
    if task.closed_at is not None:
        return TaskUnavailable(f"task {task_id} is closed ({task.closed_reason})")
    if task.claimed_by == agent:
        return TaskUnavailable(f"your lease on task {task_id} ran out: claim it again first")
    return TaskUnavailable(f"you do not hold task {task_id}: claim it first")
