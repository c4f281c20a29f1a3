"""The staff console's sign-in sessions, kept in the database so that every API replica knows them and a
sign-out (or a user's removal) ends them everywhere at once.

Only the SHA-256 of a session's token is stored: whoever reads the table (a backup, a replica) cannot
act as anyone. A session ends at ``expires_at`` however busy it is, and earlier when it stays idle for
longer than the caller's ``idle`` (a screen left signed in). ``last_seen_at`` moves at most once a
minute (``TOUCH_EVERY``): the idle limit is minutes long, and a write per request would cost more than
the precision is worth.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Engine, Table, delete, select, update
from sqlmodel import Field, SQLModel

TOUCH_EVERY = timedelta(minutes=1)
"""How stale ``last_seen_at`` may be before a request moves it."""


class ConsoleSession(SQLModel, table=True):
    """A signed-in console user, by the hash of the session's token."""

    __tablename__ = "console_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_name: str = Field(index=True)
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


CONSOLE_SESSION_TABLE: Table = ConsoleSession.__table__  # type: ignore[attr-defined]
_c = CONSOLE_SESSION_TABLE.c


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleSessions:
    """Start, look up and end console sessions; blocking, one short transaction each."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def start(self, user_name: str, now: datetime, ttl: timedelta) -> str:
        """A new session for ``user_name`` that ends at ``now + ttl``: its token, which only the caller
        (the user's cookie) ever holds."""
        token = secrets.token_urlsafe(32)
        with self._engine.begin() as connection:
            connection.execute(
                CONSOLE_SESSION_TABLE.insert().values(
                    token_hash=_digest(token),
                    user_name=user_name,
                    created_at=now,
                    expires_at=now + ttl,
                    last_seen_at=now,
                )
            )
        return token

    def user_for(self, token: str, now: datetime, idle: timedelta) -> str | None:
        """The session's user; None when the token is unknown, the session expired, or it was idle for
        longer than ``idle`` (an ended session is deleted then)."""
        digest = _digest(token)
        with self._engine.connect() as connection:
            row = connection.execute(
                select(_c.user_name, _c.expires_at, _c.last_seen_at).where(_c.token_hash == digest)
            ).first()
        if row is None:
            return None
        user_name, expires_at, last_seen_at = row
        if now >= expires_at or now - last_seen_at > idle:
            self.end(token)
            return None
        if now - last_seen_at >= TOUCH_EVERY:
            with self._engine.begin() as connection:
                connection.execute(
                    update(CONSOLE_SESSION_TABLE)
                    .where(_c.token_hash == digest, _c.last_seen_at < now)
                    .values(last_seen_at=now)
                )
        return str(user_name)

    def end(self, token: str) -> None:
        """Sign out: the session ends (an unknown token is no error)."""
        with self._engine.begin() as connection:
            connection.execute(delete(CONSOLE_SESSION_TABLE).where(_c.token_hash == _digest(token)))

    def end_all(self, user_name: str) -> int:
        """End every session of the user (a password change, a removal): how many there were."""
        with self._engine.begin() as connection:
            return connection.execute(delete(CONSOLE_SESSION_TABLE).where(_c.user_name == user_name)).rowcount

    def purge(self, now: datetime) -> int:
        """Delete the sessions that expired by ``now``: how many. Idle ones go when next looked up."""
        with self._engine.begin() as connection:
            return connection.execute(delete(CONSOLE_SESSION_TABLE).where(_c.expires_at <= now)).rowcount
