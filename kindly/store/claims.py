"""Claims: how a request takes a row for work that must happen once, though the same delivery may
arrive twice at once (a provider's retry beside the first attempt, two API replicas).

A row is written *before* its work (signalling a workflow), so nothing is lost while Temporal is
down; the request that does the work first *claims* the row: one conditional ``UPDATE`` that sets
the row's lease (``until``, unix seconds) where the work is not done and no lease is running. Of any
number of concurrent claims exactly one matches the row (PostgreSQL re-checks the condition on the
row another transaction just updated; SQLite runs writers one at a time). A failed request
*releases* its claim so the sender's retry can take the row, and the lease of a process that
crashed lapses by itself.

The same helper keeps webhook signatures single-use: there the claim creates the row, and the lease
is the signature's expiry, after which a replay is refused by its timestamp anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Table, or_, update

from kindly.store.clock import unix_now
from kindly.store.writes import insert_ignoring_duplicates


@dataclass(frozen=True)
class Lease:
    """The claim of one table's rows: ``key`` names a row, ``until`` holds the lease (NULL or past:
    free), ``done`` (when given) is set once the work is done, after which nobody claims the row."""

    table: Table
    key: str
    until: str
    done: str | None = None

    def claim(
        self, connection: Connection, key: Any, until: int, *, create: Mapping[str, Any] | None = None
    ) -> bool:
        """Hold the row until ``until``; False when its work is done or another request holds it.

        With ``create``, the row (those values, the key and the lease) is first inserted unless it
        exists: a new row is claimed by its insert. Without, a missing row is never claimed."""
        if create is not None:
            row = {**create, self.key: key, self.until: until}
            if insert_ignoring_duplicates(connection, self.table, [row], (self.key,)):
                return True
        lease = self._column(self.until)
        conditions = [self._column(self.key) == key, or_(lease.is_(None), lease < unix_now())]
        if self.done is not None:
            conditions.append(self._column(self.done).is_(None))
        statement = update(self.table).where(*conditions).values({self.until: until})
        return connection.execute(statement).rowcount == 1

    def release(self, connection: Connection, key: Any) -> None:
        """The request failed: the lease lapses at once, so a retry may claim the row again. A column
        that must hold a value gets the epoch (long past) instead of NULL."""
        lapsed = None if self._column(self.until).nullable else 0
        connection.execute(
            update(self.table).where(self._column(self.key) == key).values({self.until: lapsed})
        )

    def _column(self, name: str) -> Column[Any]:
        column: Column[Any] = self.table.c[name]
        return column
