"""The self-service links reminders end with (``kindly.store.self_service_links``), on SQLite and
PostgreSQL: one random 128-bit token per touchpoint however many attempts race for it, kept only hashed
and sealed, looked up by its hash, expired after its lifetime, and a malformed token never queried; and
the public base URL the links are made of."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, event, select

from kindly.domain.messages.links import TOKEN_LENGTH, is_token, self_service_link
from kindly.keyring import KeyRing
from kindly.settings import Settings
from kindly.store import LinkExpired, LinkTarget, SelfServiceLinks, make_engine
from kindly.store.self_service_links import SELF_SERVICE_LINK_TABLE
from tests.databases import at_once, database_url  # noqa: F401
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LIFETIME = timedelta(days=30)
KEY = "overdue-LN-1/run-1/tp-3"
KEYRING = KeyRing(keys={"k1": b"k" * 32}, current_id="k1", hash_key=b"h" * 32)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def links(engine: Engine) -> SelfServiceLinks:
    return SelfServiceLinks(engine, KEYRING)


class Statements:
    """Every statement the engine runs while it is recorded, with its parameters."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[tuple[str, Any]] = []
        self._engine = engine

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        self.seen.append((statement, parameters))

    def __enter__(self) -> Statements:
        event.listen(self._engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._record)


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(SELF_SERVICE_LINK_TABLE))]


def test_a_token_is_128_random_bits_kept_only_hashed_and_sealed(
    engine: Engine, links: SelfServiceLinks
) -> None:
    tokens = [links.issue(f"wf/run/tp-{n}", "LN-1", n, NOW, LIFETIME) for n in range(20)]
    assert len(set(tokens)) == 20
    for token in tokens:
        assert len(token) == TOKEN_LENGTH and is_token(token)
        assert len(base64.urlsafe_b64decode(token + "==")) * 8 >= 128
    stored = {row["idempotency_key"]: row for row in rows(engine)}
    for n, token in enumerate(tokens):
        row = stored[f"wf/run/tp-{n}"]
        assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
        assert KEYRING.open_text(row["token_sealed"]) == token
        assert (row["account_id"], row["touchpoint"]) == ("LN-1", n)
        assert (row["created_at"], row["expires_at"]) == (NOW, NOW + LIFETIME)
        # Nowhere in clear: not in any column, not inside another one.
        assert not any(token in str(value) for value in row.values())


def test_one_link_per_touchpoint_however_many_attempts_race(engine: Engine, links: SelfServiceLinks) -> None:
    tokens = at_once(8, lambda: links.issue(KEY, "LN-1", 3, NOW, LIFETIME))
    assert len(set(tokens)) == 1
    assert len(rows(engine)) == 1
    # A later retry gets the same link, as it was: its expiry does not move.
    later = links.issue(KEY, "LN-1", 3, NOW + timedelta(hours=5), timedelta(days=1))
    assert later == tokens[0]
    assert links.resolve(later, NOW) == LinkTarget("LN-1", 3, NOW + LIFETIME)


def test_a_link_leads_to_its_touchpoint_until_it_expires(links: SelfServiceLinks) -> None:
    token = links.issue(KEY, "LN-1", 3, NOW, LIFETIME)
    other = links.issue("overdue-LN-2/run-9/tp-1", "LN-2", 1, NOW, timedelta(days=1))
    assert links.resolve(token, NOW) == LinkTarget("LN-1", 3, NOW + LIFETIME)
    assert links.resolve(token, NOW + LIFETIME - timedelta(seconds=1)) == LinkTarget(
        "LN-1", 3, NOW + LIFETIME
    )
    assert links.resolve(token, NOW + LIFETIME) == LinkExpired("LN-1", NOW + LIFETIME)
    assert links.resolve(other, NOW + timedelta(days=2)) == LinkExpired("LN-2", NOW + timedelta(days=1))
    # A token of the right shape that nobody issued is unknown, not expired.
    assert links.resolve("A" * TOKEN_LENGTH, NOW) is None


def test_a_token_is_looked_up_by_its_hash_alone(engine: Engine, links: SelfServiceLinks) -> None:
    token = links.issue(KEY, "LN-1", 3, NOW, LIFETIME)
    with Statements(engine) as statements:
        assert isinstance(links.resolve(token, NOW), LinkTarget)
    [(_, parameters)] = statements.seen
    assert hashlib.sha256(token.encode()).hexdigest() in str(parameters)
    assert token not in str(parameters)
    # What the table holds does not open the page: neither the hash nor the sealed token is a token.
    [row] = rows(engine)
    assert links.resolve(row["token_hash"], NOW) is None
    assert links.resolve(row["token_sealed"], NOW) is None


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "short",
        "A" * (TOKEN_LENGTH - 1),
        "A" * (TOKEN_LENGTH + 1),
        "A" * (TOKEN_LENGTH - 1) + "=",
        "A" * (TOKEN_LENGTH - 1) + "/",
        "' OR '1'='1' --AAAAAAA",
        "A" * (TOKEN_LENGTH - 1) + "\n",
        "ü" * TOKEN_LENGTH,
        "x" * 10_000,
    ],
)
def test_a_malformed_token_is_unknown_without_a_query(
    engine: Engine, links: SelfServiceLinks, garbage: str
) -> None:
    links.issue(KEY, "LN-1", 3, NOW, LIFETIME)
    with Statements(engine) as statements:
        assert links.resolve(garbage, NOW) is None
        assert statements.seen == []
        # The recorder sees a lookup when there is one.
        links.resolve("B" * TOKEN_LENGTH, NOW)
        assert len(statements.seen) == 1


def test_the_link_is_the_public_base_url_and_the_token() -> None:
    token = "Ab_-" + "c" * (TOKEN_LENGTH - 4)
    assert self_service_link("https://pay.lender.example", token) == f"https://pay.lender.example/p/{token}"


# --- the public base URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "https://pay.lender.example", "https://lender.example:8443/kindly"]
)
def test_a_public_base_url_links_can_be_appended_to_is_accepted(url: str) -> None:
    assert Settings(_env_file=None, public_base_url=url).public_base_url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("pay.lender.example", "http:// or https://"),
        ("ftp://pay.lender.example", "http:// or https://"),
        ("https://", "http:// or https://"),
        ("https://pay.lender.example/", "must not end with a slash"),
        ("https://pay.lender.example/kindly/", "must not end with a slash"),
        ("https://pay.lender.example?utm=sms", "no query or fragment"),
        ("https://pay.lender.example/#top", "no query or fragment"),
        ("https://user:secret@pay.lender.example", "no user name or password"),
        ("https://pay.lender.example:http", "is not a URL"),
        ("https://päy.lender.example", "must be ASCII"),
        ("https://pay.lender.example/a b", "must be ASCII without spaces"),
    ],
)
def test_a_public_base_url_that_would_break_every_link_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, public_base_url=url)
    assert "public_base_url" in str(info.value) and problem in str(info.value)


def test_links_last_thirty_days_unless_set() -> None:
    assert Settings(_env_file=None).self_service_link_days == 30
    with pytest.raises(ValidationError, match="self_service_link_days"):
        Settings(_env_file=None, self_service_link_days=0)
