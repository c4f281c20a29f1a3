"""Writes that may race a duplicate: activities and webhooks are retried, and a retry may run beside
the attempt it replaces, so every insert is keyed by a unique constraint and a duplicate is an answer,
not an error."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Executable, Table, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session


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


def commit_unless_duplicate(session: Session) -> None:
    """Commit the session's new row; the same row written concurrently is there, which is the point,
    so its integrity error rolls back instead of failing."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
