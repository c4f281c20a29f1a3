"""The phone index (which accounts a number belongs to) and opt-outs, and how every table stores a
phone number.

**Phone numbers are never stored in clear.** Every table that holds one stores ``phone_hash``, the
keyed hash ``KeyRing.lookup_hash(normalise_phone(phone))`` (HMAC-SHA256 with the lookup key, indexed,
used for every lookup), and, only where somebody needs to read the number back, ``phone_encrypted``,
``KeyRing.seal_text(phone)`` (AES-256-GCM under the current key, with the key id). Per table:

* ``phone_lookup`` (phone → accounts): the hash only. Routing a reply needs equality, nothing else,
  and the number itself lives in the account's workflow, which re-indexes it when it starts and when
  the contact changes.
* ``sms_opt_out``: hash and encrypted number. The opt-out is the one record of a customer's wish that
  outlives every workflow: compliance must be able to say which number opted out, and a new lookup
  key needs the numbers to hash them again.
* ``inbound_sms`` (``kindly.store.inbound``): the sender's hash and encrypted number.

A lookup key that differs from the one the rows were written with finds nothing, and a wrong
encryption key cannot open ``phone_encrypted`` (``DecryptionError``).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Connection, Engine, Table, UniqueConstraint, bindparam, delete
from sqlmodel import Field, Session, SQLModel, col, select

from kindly.keyring import KeyRing
from kindly.store.clock import utcnow
from kindly.store.writes import commit_unless_duplicate, insert_ignoring_duplicates

_SEPARATORS = re.compile(r"[\s\-().]")


def normalise_phone(phone: str) -> str:
    """The form a number is hashed in: no spaces, dashes, dots or brackets; ``00`` prefix as ``+``."""
    compact = _SEPARATORS.sub("", phone)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    return compact


def phone_hash(keyring: KeyRing, phone: str) -> str:
    """The keyed hash every table stores and looks a number up by."""
    return keyring.lookup_hash(normalise_phone(phone))


def seal_phone(keyring: KeyRing, phone: str) -> str:
    """The ``phone_encrypted`` value of a number (``KeyRing.open_text`` reads it back)."""
    return keyring.seal_text(normalise_phone(phone))


class PhoneIndexEntry(SQLModel, table=True):
    """One phone number (its keyed hash) → one account; a number may belong to several accounts."""

    __tablename__ = "phone_lookup"
    __table_args__ = (UniqueConstraint("phone_hash", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    phone_hash: str = Field(index=True, max_length=64)
    account_id: str = Field(index=True)
    registered_at: datetime = Field(default_factory=utcnow)


class OptOut(SQLModel, table=True):
    """A number that asked for no more SMS: kept beyond any one workflow, for every account on it."""

    __tablename__ = "sms_opt_out"

    phone_hash: str = Field(primary_key=True, max_length=64)
    phone_encrypted: str
    account_id: str
    opted_out_at: datetime = Field(default_factory=utcnow)


_PHONE_LOOKUP: Table = PhoneIndexEntry.__table__  # type: ignore[attr-defined]
# Statements run as every account's workflow starts, built once.
_DELETE_OTHER_NUMBERS = delete(PhoneIndexEntry).where(
    col(PhoneIndexEntry.account_id) == bindparam("account"),
    col(PhoneIndexEntry.phone_hash) != bindparam("digest"),
)
_OPT_OUT_OF = select(OptOut.phone_hash).where(OptOut.phone_hash == bindparam("digest"))


def accounts_with(session: Session, digest: str) -> list[str]:
    """The accounts indexed under a number's hash, oldest first."""
    rows = session.exec(
        select(PhoneIndexEntry.account_id)
        .where(PhoneIndexEntry.phone_hash == digest)
        .order_by(col(PhoneIndexEntry.id))
    ).all()
    return list(rows)


class PhoneBook:
    """Synchronous access to the phone index and opt-outs; numbers go in and out through the key ring."""

    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self._engine = engine
        self._keyring = keyring

    def phone_hash(self, phone: str) -> str:
        """The keyed hash every table stores and looks a number up by."""
        return phone_hash(self._keyring, phone)

    def open_phone(self, sealed: str) -> str:
        """The number in a ``phone_encrypted`` column (``DecryptionError`` with a wrong key)."""
        return self._keyring.open_text(sealed)

    # --- phone index ------------------------------------------------------------------------------

    def register(self, phone: str, account_id: str) -> None:
        """Map ``phone`` to ``account_id``; registering the same pair again is harmless."""
        with self._engine.begin() as connection:
            _add_number(connection, account_id, self.phone_hash(phone))

    def replace(self, account_id: str, phone: str) -> None:
        """The account's number changed: it is reached at ``phone`` only (in one transaction)."""
        with self._engine.begin() as connection:
            _replace(connection, account_id, self.phone_hash(phone))

    def index_account(self, account_id: str, phone: str) -> bool:
        """What an account's workflow does when it starts: ``replace(account_id, phone)``, and whether
        ``phone`` opted out (``is_opted_out``), in one transaction; True when it opted out."""
        digest = self.phone_hash(phone)
        with self._engine.begin() as connection:
            _replace(connection, account_id, digest)
            return _opted_out(connection, digest)

    def accounts_for(self, phone: str) -> list[str]:
        with Session(self._engine) as session:
            return accounts_with(session, self.phone_hash(phone))

    # --- opt-outs ---------------------------------------------------------------------------------

    def record_opt_out(self, phone: str, account_id: str) -> None:
        digest = self.phone_hash(phone)
        with Session(self._engine) as session:
            if session.get(OptOut, digest) is None:
                sealed = seal_phone(self._keyring, phone)
                session.add(OptOut(phone_hash=digest, phone_encrypted=sealed, account_id=account_id))
                commit_unless_duplicate(session)

    def is_opted_out(self, phone: str) -> bool:
        with self._engine.connect() as connection:
            return _opted_out(connection, self.phone_hash(phone))

    def opt_outs(self) -> list[OptOut]:
        """Every opt-out (``open_phone(row.phone_encrypted)`` reads a number, for compliance)."""
        with Session(self._engine) as session:
            return list(session.exec(select(OptOut).order_by(col(OptOut.opted_out_at))).all())


def _replace(connection: Connection, account_id: str, digest: str) -> None:
    """Delete the account's other numbers, then add this one unless it is there: the insert skips an
    existing pair (also one a concurrent replacement inserts first), so it never fails."""
    connection.execute(_DELETE_OTHER_NUMBERS, {"account": account_id, "digest": digest})
    _add_number(connection, account_id, digest)


def _add_number(connection: Connection, account_id: str, digest: str) -> None:
    """The pair unless it is there (also when a concurrent writer inserts it first)."""
    insert_ignoring_duplicates(
        connection,
        _PHONE_LOOKUP,
        [{"phone_hash": digest, "account_id": account_id, "registered_at": utcnow()}],
        ("phone_hash", "account_id"),
    )


def _opted_out(connection: Connection, digest: str) -> bool:
    return connection.execute(_OPT_OUT_OF, {"digest": digest}).first() is not None
