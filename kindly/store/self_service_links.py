"""The self-service links that reminders end with: a random token per touchpoint that leads the customer
to their own page (``<public base URL>/p/<token>``), mapped here to the account and the touchpoint.

The token carries nothing about the customer, and the table keeps it twice, neither time in clear:

* ``token_hash``, its SHA-256, is the key every lookup uses: whoever reads the table (a backup, a
  replica) holds no working link. The token has 128 random bits, so an unkeyed hash is enough, and a
  lookup compares hashes, so how long it takes says nothing about how close a guess came.
* ``token_sealed``, the token under the key ring: a retried send must render the very link its first
  attempt may already have delivered, and a second token for the same message would be a second
  live link to the account.

``idempotency_key`` (the touchpoint's, as the outbox has it) is unique: one link per touchpoint however
many attempts run at once. A link expires at ``expires_at``; its page then says so (410), where an
unknown token is simply not found (404).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, Table, bindparam, select
from sqlmodel import Field, SQLModel

from kindly.domain.messages.links import TOKEN_BYTES, is_token
from kindly.keyring import KeyRing
from kindly.store.writes import insert_ignoring_duplicates


class SelfServiceLink(SQLModel, table=True):
    """One touchpoint's link: the hash of its token, the token sealed, and where it leads until when."""

    __tablename__ = "self_service_link"

    token_hash: str = Field(primary_key=True, max_length=64)
    token_sealed: str
    idempotency_key: str = Field(unique=True, index=True)
    account_id: str = Field(index=True)
    touchpoint: int
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class LinkTarget:
    """Where a live link leads: the account, the reminder it came with, and how long it still works."""

    account_id: str
    touchpoint: int
    expires_at: datetime


@dataclass(frozen=True)
class LinkExpired:
    """A real link whose time is up: the page says so, rather than pretending it never existed."""

    account_id: str
    expires_at: datetime


SELF_SERVICE_LINK_TABLE: Table = SelfServiceLink.__table__  # type: ignore[attr-defined]
_c = SELF_SERVICE_LINK_TABLE.c
# Statements on the path of every reminder and every page view, built once.
_SEALED_FOR_KEY = select(_c.token_sealed).where(_c.idempotency_key == bindparam("key"))
_TARGET_OF = select(_c.account_id, _c.touchpoint, _c.expires_at).where(_c.token_hash == bindparam("digest"))


def token_hash(token: str) -> str:
    """The column a token is looked up by (SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


class SelfServiceLinks:
    """Issue and resolve self-service links; blocking, one short transaction each."""

    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self._engine = engine
        self._keyring = keyring

    def issue(
        self, idempotency_key: str, account_id: str, touchpoint: int, now: datetime, lifetime: timedelta
    ) -> str:
        """The token of the touchpoint's link, valid until ``now + lifetime`` when it is new.

        The same key always gets the same token: the row is inserted unless one exists (also one a
        concurrent attempt inserts first), then read back in the same transaction, so every attempt
        of a touchpoint renders the link the first one may have delivered. What a later call says
        about the account, touchpoint or lifetime does not change an existing link."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        row = {
            "token_hash": token_hash(token),
            "token_sealed": self._keyring.seal_text(token),
            "idempotency_key": idempotency_key,
            "account_id": account_id,
            "touchpoint": touchpoint,
            "created_at": now,
            "expires_at": now + lifetime,
        }
        with self._engine.begin() as connection:
            insert_ignoring_duplicates(connection, SELF_SERVICE_LINK_TABLE, [row], ("idempotency_key",))
            sealed = connection.execute(_SEALED_FOR_KEY, {"key": idempotency_key}).scalar_one()
        return self._keyring.open_text(sealed)

    def resolve(self, token: str, now: datetime) -> LinkTarget | LinkExpired | None:
        """Where ``token`` leads at ``now``: ``LinkTarget`` while it works, ``LinkExpired`` once it
        expired, None for a token nobody issued. A value without a token's shape is None without a
        query: whatever a visitor types into the address never reaches the database."""
        if not is_token(token):
            return None
        with self._engine.connect() as connection:
            row = connection.execute(_TARGET_OF, {"digest": token_hash(token)}).first()
        if row is None:
            return None
        account_id, touchpoint, expires_at = row
        if now >= expires_at:
            return LinkExpired(account_id=account_id, expires_at=expires_at)
        return LinkTarget(account_id=account_id, touchpoint=touchpoint, expires_at=expires_at)
