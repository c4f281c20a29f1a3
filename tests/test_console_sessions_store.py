"""The staff console's sessions (``kindly.store.console_sessions``) on SQLite and PostgreSQL: only the
token's hash is stored, a session ends when it expires or idles, at sign-out, and with all of its user's."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from kindly.store import ConsoleSessions, make_engine
from kindly.store.console_sessions import CONSOLE_SESSION_TABLE
from tests.databases import database_url  # noqa: F401
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = timedelta(hours=8)
IDLE = timedelta(minutes=30)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> ConsoleSessions:
    return ConsoleSessions(engine)


def last_seen(engine: Engine) -> datetime:
    with engine.connect() as connection:
        seen: datetime = connection.execute(select(CONSOLE_SESSION_TABLE.c.last_seen_at)).scalar_one()
        return seen


def test_a_session_stores_only_its_tokens_hash(engine: Engine, sessions: ConsoleSessions) -> None:
    token = sessions.start("ann", NOW, TTL)
    other = sessions.start("ann", NOW, TTL)
    assert token != other and len(token) >= 40
    with engine.connect() as connection:
        hashes = set(connection.execute(select(CONSOLE_SESSION_TABLE.c.token_hash)).scalars())
    assert hashes == {hashlib.sha256(each.encode()).hexdigest() for each in (token, other)}
    assert sessions.user_for(token, NOW, IDLE) == "ann"
    assert sessions.user_for("not-a-token", NOW, IDLE) is None


def test_a_session_moves_its_last_seen_at_most_once_a_minute(
    engine: Engine, sessions: ConsoleSessions
) -> None:
    token = sessions.start("ann", NOW, TTL)
    assert sessions.user_for(token, NOW + timedelta(seconds=59), IDLE) == "ann"
    assert last_seen(engine) == NOW
    assert sessions.user_for(token, NOW + timedelta(minutes=2), IDLE) == "ann"
    assert last_seen(engine) == NOW + timedelta(minutes=2)


def test_an_idle_session_ends(sessions: ConsoleSessions) -> None:
    token = sessions.start("ann", NOW, TTL)
    assert sessions.user_for(token, NOW + timedelta(minutes=25), IDLE) == "ann"  # seen: idle from here
    assert sessions.user_for(token, NOW + timedelta(minutes=50), IDLE) == "ann"
    assert sessions.user_for(token, NOW + timedelta(minutes=81), IDLE) is None
    assert sessions.user_for(token, NOW + timedelta(minutes=82), timedelta(days=1)) is None  # ended for good


def test_a_session_expires_however_busy(sessions: ConsoleSessions) -> None:
    token = sessions.start("ann", NOW, timedelta(minutes=45))
    for minutes in range(0, 45, 10):
        assert sessions.user_for(token, NOW + timedelta(minutes=minutes), IDLE) == "ann"
    assert sessions.user_for(token, NOW + timedelta(minutes=45), IDLE) is None


def test_signing_out_ends_one_session_or_all_of_a_users(sessions: ConsoleSessions) -> None:
    first, second = sessions.start("ann", NOW, TTL), sessions.start("ann", NOW, TTL)
    bobs = sessions.start("bob", NOW, TTL)
    sessions.end(first)
    sessions.end(first)  # again: no error
    assert sessions.user_for(first, NOW, IDLE) is None
    assert sessions.user_for(second, NOW, IDLE) == "ann"
    assert sessions.end_all("ann") == 1
    assert sessions.user_for(second, NOW, IDLE) is None
    assert sessions.user_for(bobs, NOW, IDLE) == "bob"


def test_expired_sessions_are_purged(sessions: ConsoleSessions) -> None:
    short = sessions.start("ann", NOW, timedelta(minutes=5))
    long = sessions.start("bob", NOW, TTL)
    assert sessions.purge(NOW + timedelta(minutes=5)) == 1
    assert sessions.user_for(short, NOW, IDLE) is None
    assert sessions.user_for(long, NOW + timedelta(minutes=5), IDLE) == "bob"
