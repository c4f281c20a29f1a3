"""The API's tables: which accounts a phone number belongs to, opt-outs, every inbound SMS, every
payment notification, each sent message's delivery status and the webhook signatures already used;
and a small synchronous store over them (handlers call it from a thread).

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
* ``inbound_sms`` (each inbound SMS): the sender's hash and encrypted number, and the text encrypted
  too, in ``body_encrypted`` (``KeyRing.seal_text(text)``): a reply is personal data in itself ("I lost
  my job", health details). A message from an unknown number is kept for an operator, who needs the
  number to follow it up. ``PhoneIndex.open_body(message)`` reads the text, ``open_phone`` the number;
  nothing else should read the columns (see *Older databases* for ``body``).

A lookup key that differs from the one the rows were written with finds nothing, and a wrong
encryption key cannot open ``phone_encrypted`` or ``body_encrypted`` (``DecryptionError``).

**Idempotency.** Inbound messages and payment notifications are keyed by the provider's id / the
payment reference (unique constraints, so a concurrent duplicate's insert fails instead of racing a
check). A row is written *before* signalling, so nothing is lost when Temporal is down; the request
that signals first *claims* the row (a conditional update with a short lease), so two concurrent
deliveries of the same message or payment signal once; a failure releases the claim for the
sender's retry, a crashed process's claim lapses after ``CLAIM_SECONDS``.

**Older databases.** Before phone numbers were protected these tables were ``phone_index``,
``opt_out``, ``inbound_message`` and ``payment_notification``. This version uses new table names, so a
development database from an older version keeps working (its old rows are not read) instead of
failing on a missing column; ``create_tables`` logs a warning naming the old tables, which hold numbers
in clear and should be dropped.

Before inbound texts were encrypted, ``inbound_sms`` kept the text in clear in ``body``. That table is
kept (a new name would forget which messages were already routed, and a provider's retry of one would
reach the workflow again): ``create_tables`` adds the nullable column ``body_encrypted`` to it, under
the lock ``make_engine`` creates tables under. New rows store ``""`` in ``body`` (the column stays,
``NOT NULL``, for older processes still inserting) and the ciphertext in ``body_encrypted``; a row with
``body_encrypted`` ``NULL`` was written by an older version and its ``body`` is read as it is. The
column, not the look of the value, tells the two apart: a reply may itself read ``k1:abc…``, and
guessing from a failed decryption would hand out ciphertext as text under a wrong key instead of
raising ``DecryptionError``. Old rows keep their text in clear until they are deleted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Table,
    UniqueConstraint,
    bindparam,
    delete,
    inspect,
    or_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import AutoString, Field, Session, SQLModel, col, select

from kindly.keyring import KeyRing
from kindly.store.db import add_missing_columns, insert_ignoring_duplicates, lock_schema, missing_columns

log = logging.getLogger(__name__)

# How long a request that is signalling a message or payment holds it against concurrent duplicates.
CLAIM_SECONDS = 60

LEGACY_TABLES = ("phone_index", "opt_out", "inbound_message", "payment_notification")

_SEPARATORS = re.compile(r"[\s\-().]")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def normalise_phone(phone: str) -> str:
    """The form a number is hashed in: no spaces, dashes, dots or brackets; ``00`` prefix as ``+``."""
    compact = _SEPARATORS.sub("", phone)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    return compact


class PhoneIndexEntry(SQLModel, table=True):
    """One phone number (its keyed hash) → one account; a number may belong to several accounts."""

    __tablename__ = "phone_lookup"
    __table_args__ = (UniqueConstraint("phone_hash", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    phone_hash: str = Field(index=True, max_length=64)
    account_id: str = Field(index=True)
    registered_at: datetime = Field(default_factory=_utcnow)


class InboundMessage(SQLModel, table=True):
    """Every inbound SMS, matched or not: never lost. The sender's number is hashed and encrypted, the
    text encrypted: read it with ``PhoneIndex.open_body``, never from the columns."""

    __tablename__ = "inbound_sms"
    __table_args__ = (UniqueConstraint("provider", "provider_message_id"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str
    provider_message_id: str = Field(index=True)
    phone_hash: str = Field(index=True, max_length=64)
    phone_encrypted: str
    # The text, ``KeyRing.seal_text(text)``; NULL in a row written before texts were encrypted.
    body_encrypted: str | None = None
    # Column ``body``: such an older row's text, in clear; ``""`` in every newer row. Not named
    # ``body`` here so that no reader takes it for the text (``PhoneIndex.open_body`` reads both).
    legacy_body: str = Field(default="", sa_column=Column("body", AutoString, nullable=False))
    received_at: datetime = Field(default_factory=_utcnow)
    matched_account_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    signalled_account_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Unix seconds until which one request holds the message to signal it (see ``CLAIM_SECONDS``).
    claimed_until: int | None = None
    routed_at: datetime | None = None


class PaymentNotification(SQLModel, table=True):
    """One payment notification per reference: a replay answers "duplicate" without signalling."""

    __tablename__ = "payment_notice"

    reference: str = Field(primary_key=True)
    account_id: str = Field(index=True)
    # The exact decimal as text: SQLite passes a Numeric through float, which rounds large amounts
    # (and a repeated notification would then look like one for another amount).
    amount: str
    received_at: datetime = Field(default_factory=_utcnow)
    claimed_until: int | None = None
    signalled_at: datetime | None = None


class OptOut(SQLModel, table=True):
    """A number that asked for no more SMS: kept beyond any one workflow, for every account on it."""

    __tablename__ = "sms_opt_out"

    phone_hash: str = Field(primary_key=True, max_length=64)
    phone_encrypted: str
    account_id: str
    opted_out_at: datetime = Field(default_factory=_utcnow)


# Delivery states in the order a message passes through them; the last three are final.
DELIVERY_RANKS = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}
FAILED_STATES = frozenset({"undelivered", "failed"})


class DeliveryStatus(SQLModel, table=True):
    """A sent message's delivery status as the carrier reported it: it only ever moves forward."""

    __tablename__ = "sms_delivery"

    provider_message_id: str = Field(primary_key=True)
    account_id: str = Field(index=True)
    status: str
    rank: int
    permanent: bool = False
    updated_at: datetime = Field(default_factory=_utcnow)
    undeliverable_signalled_at: datetime | None = None


class SeenSignature(SQLModel, table=True):
    """A webhook signature already accepted, kept until a replay of it would fail anyway."""

    __tablename__ = "webhook_signature"

    digest: str = Field(primary_key=True, max_length=64)
    expires_at: int = Field(index=True)  # unix seconds


_PHONE_LOOKUP: Table = PhoneIndexEntry.__table__  # type: ignore[attr-defined]
# Statements run as every account's workflow starts, built once.
_DELETE_OTHER_NUMBERS = delete(PhoneIndexEntry).where(
    col(PhoneIndexEntry.account_id) == bindparam("account"),
    col(PhoneIndexEntry.phone_hash) != bindparam("digest"),
)
_OPT_OUT_OF = select(OptOut.phone_hash).where(OptOut.phone_hash == bindparam("digest"))

API_TABLES = [
    PhoneIndexEntry.__table__,  # type: ignore[attr-defined]
    InboundMessage.__table__,  # type: ignore[attr-defined]
    PaymentNotification.__table__,  # type: ignore[attr-defined]
    OptOut.__table__,  # type: ignore[attr-defined]
    DeliveryStatus.__table__,  # type: ignore[attr-defined]
    SeenSignature.__table__,  # type: ignore[attr-defined]
]


# Columns added to a table after its first release, which ``create_all`` does not add to an existing
# table: (table, column). Each is nullable, so adding it to a table with rows is safe and instant.
ADDED_COLUMNS = (("inbound_sms", "body_encrypted"),)


def create_tables(engine: Engine) -> None:
    """Create the API's tables and add the columns of ``ADDED_COLUMNS`` a table from an older version
    lacks; warn about tables of older versions that hold numbers in clear."""
    SQLModel.metadata.create_all(engine, tables=API_TABLES)
    _add_missing_columns(engine)
    legacy = sorted(set(LEGACY_TABLES) & set(inspect(engine).get_table_names()))
    if legacy:
        log.warning(
            "database %s has tables from an older Kindly that are no longer used: %s. They may hold "
            "phone numbers in clear, and opt-outs in them are not carried over. Drop them (or delete a "
            "development database); this version stores numbers as a keyed hash and encrypted.",
            engine.url.render_as_string(hide_password=True),
            ", ".join(legacy),
        )


def _add_missing_columns(engine: Engine) -> None:
    """Add the columns of ``ADDED_COLUMNS`` the database lacks: checked without a lock first (nothing to
    do but once per database), then again and added under the schema lock
    (``kindly.store.db.lock_schema``)."""
    with engine.connect() as connection:
        if not missing_columns(connection, ADDED_COLUMNS):
            return
    with engine.begin() as connection:
        lock_schema(connection)
        add_missing_columns(connection, ADDED_COLUMNS)


@dataclass(frozen=True)
class DeliveryUpdate:
    """The outcome of a receipt: whether it moved the status, and the status now."""

    advanced: bool
    current: DeliveryStatus


@dataclass(frozen=True)
class NewAccountsIndexed:
    """What ``PhoneIndex.index_new_accounts`` found, by account id."""

    opted_out: frozenset[str]
    """Accounts whose number opted out of SMS before (under any account)."""
    indexed_elsewhere: frozenset[str]
    """Accounts already indexed under another number, left as they were."""


class PhoneIndex:
    """Synchronous access to the API's tables; phone numbers go in and out through the key ring."""

    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self._engine = engine
        self._keyring = keyring

    # --- phone numbers ----------------------------------------------------------------------------

    def phone_hash(self, phone: str) -> str:
        """The keyed hash every table stores and looks a number up by."""
        return self._keyring.lookup_hash(normalise_phone(phone))

    def open_phone(self, sealed: str) -> str:
        """The number in a ``phone_encrypted`` column (``DecryptionError`` with a wrong key)."""
        return self._keyring.open_text(sealed)

    def _seal(self, phone: str) -> str:
        return self._keyring.seal_text(normalise_phone(phone))

    def open_body(self, message: InboundMessage) -> str:
        """The text of an inbound SMS (``DecryptionError`` with a wrong key). A row written before
        texts were encrypted (``body_encrypted`` NULL) holds it in clear: returned as it is."""
        if message.body_encrypted is None:
            return message.legacy_body
        return self._keyring.open_text(message.body_encrypted)

    # --- phone index ------------------------------------------------------------------------------

    def register(self, phone: str, account_id: str) -> None:
        """Map ``phone`` to ``account_id``; registering the same pair again is harmless."""
        with self._engine.begin() as connection:
            self._add_number(connection, account_id, self.phone_hash(phone))

    def replace(self, account_id: str, phone: str) -> None:
        """The account's number changed: it is reached at ``phone`` only (in one transaction)."""
        with self._engine.begin() as connection:
            self._replace(connection, account_id, self.phone_hash(phone))

    def index_account(self, account_id: str, phone: str) -> bool:
        """What an account's workflow does when it starts: ``replace(account_id, phone)``, and whether
        ``phone`` opted out (``is_opted_out``), in one transaction; True when it opted out."""
        digest = self.phone_hash(phone)
        with self._engine.begin() as connection:
            self._replace(connection, account_id, digest)
            return self._opted_out(connection, digest)

    def index_new_accounts(self, accounts: Sequence[tuple[str, str]]) -> NewAccountsIndexed:
        """Before accounts are started in bulk, ``(account_id, phone)`` each, in one transaction: add
        the number of every account that has none indexed yet, and tell which numbers opted out.

        An account indexed under another number is left alone and reported: it may be one whose
        run is open and whose number an operator changed since (a re-import must not undo that), or
        one starting afresh after a failed run; the starter replaces its number only once its start
        succeeded (``replace``).
        """
        digests = {account_id: self.phone_hash(phone) for account_id, phone in accounts}
        if not digests:
            return NewAccountsIndexed(frozenset(), frozenset())
        with self._engine.begin() as connection:
            indexed: dict[str, set[str]] = {}
            for account_id, digest in connection.execute(
                select(PhoneIndexEntry.account_id, PhoneIndexEntry.phone_hash).where(
                    col(PhoneIndexEntry.account_id).in_(list(digests))
                )
            ):
                indexed.setdefault(account_id, set()).add(digest)
            opted_out_digests = set(
                connection.execute(
                    select(OptOut.phone_hash).where(col(OptOut.phone_hash).in_(set(digests.values())))
                ).scalars()
            )
            insert_ignoring_duplicates(
                connection,
                _PHONE_LOOKUP,
                [
                    {"phone_hash": digest, "account_id": account_id, "registered_at": _utcnow()}
                    for account_id, digest in digests.items()
                    if account_id not in indexed
                ],
                ("phone_hash", "account_id"),
            )
        return NewAccountsIndexed(
            opted_out=frozenset(a for a, digest in digests.items() if digest in opted_out_digests),
            indexed_elsewhere=frozenset(a for a, numbers in indexed.items() if numbers != {digests[a]}),
        )

    @staticmethod
    def _replace(connection: Connection, account_id: str, digest: str) -> None:
        """Delete the account's other numbers, then add this one unless it is there: the insert skips
        an existing pair (also one a concurrent replacement inserts first), so it never fails."""
        connection.execute(_DELETE_OTHER_NUMBERS, {"account": account_id, "digest": digest})
        PhoneIndex._add_number(connection, account_id, digest)

    @staticmethod
    def _add_number(connection: Connection, account_id: str, digest: str) -> None:
        """The pair unless it is there (also when a concurrent writer inserts it first)."""
        insert_ignoring_duplicates(
            connection,
            _PHONE_LOOKUP,
            [{"phone_hash": digest, "account_id": account_id, "registered_at": _utcnow()}],
            ("phone_hash", "account_id"),
        )

    @staticmethod
    def _commit_unless_duplicate(session: Session) -> None:
        try:
            session.commit()
        except IntegrityError:  # the same row written concurrently: it is there, which is the point
            session.rollback()

    def accounts_for(self, phone: str) -> list[str]:
        with Session(self._engine) as session:
            return self._accounts_for(session, self.phone_hash(phone))

    @staticmethod
    def _accounts_for(session: Session, digest: str) -> list[str]:
        rows = session.exec(
            select(PhoneIndexEntry.account_id)
            .where(PhoneIndexEntry.phone_hash == digest)
            .order_by(col(PhoneIndexEntry.id))
        ).all()
        return list(rows)

    # --- opt-outs ---------------------------------------------------------------------------------

    def record_opt_out(self, phone: str, account_id: str) -> None:
        digest = self.phone_hash(phone)
        with Session(self._engine) as session:
            if session.get(OptOut, digest) is None:
                session.add(
                    OptOut(phone_hash=digest, phone_encrypted=self._seal(phone), account_id=account_id)
                )
                self._commit_unless_duplicate(session)

    def is_opted_out(self, phone: str) -> bool:
        with self._engine.connect() as connection:
            return self._opted_out(connection, self.phone_hash(phone))

    @staticmethod
    def _opted_out(connection: Connection, digest: str) -> bool:
        return connection.execute(_OPT_OUT_OF, {"digest": digest}).first() is not None

    def opt_outs(self) -> list[OptOut]:
        """Every opt-out (``open_phone(row.phone_encrypted)`` reads a number, for compliance)."""
        with Session(self._engine) as session:
            return list(session.exec(select(OptOut).order_by(col(OptOut.opted_out_at))).all())

    # --- inbound messages -------------------------------------------------------------------------

    def record_inbound(
        self, provider: str, provider_message_id: str, from_phone: str, body: str
    ) -> InboundMessage:
        """The stored message for this provider id, storing it (with its matches) when new; the
        number and ``body`` are stored encrypted (``open_phone``, ``open_body`` read them)."""
        digest = self.phone_hash(from_phone)
        with Session(self._engine) as session:
            row = self._inbound(session, provider, provider_message_id)
            if row is None:
                session.add(
                    InboundMessage(
                        provider=provider,
                        provider_message_id=provider_message_id,
                        phone_hash=digest,
                        phone_encrypted=self._seal(from_phone),
                        body_encrypted=self._keyring.seal_text(body),
                        matched_account_ids=self._accounts_for(session, digest),
                    )
                )
                self._commit_unless_duplicate(session)
                row = self._inbound(session, provider, provider_message_id)
                assert row is not None
            return row

    def claim_inbound(self, message_id: int) -> bool:
        """Take the message for routing; False when it is routed or another request holds it."""
        now = int(time.time())
        statement = (
            update(InboundMessage)
            .where(
                col(InboundMessage.id) == message_id,
                col(InboundMessage.routed_at).is_(None),
                or_(col(InboundMessage.claimed_until).is_(None), col(InboundMessage.claimed_until) < now),
            )
            .values(claimed_until=now + CLAIM_SECONDS)
        )
        with self._engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def release_inbound(self, message_id: int) -> None:
        """Routing failed: let the sender's retry take the message again."""
        with self._engine.begin() as connection:
            connection.execute(
                update(InboundMessage).where(col(InboundMessage.id) == message_id).values(claimed_until=None)
            )

    def mark_signalled(self, message_id: int, account_id: str) -> None:
        with Session(self._engine) as session:
            row = session.get(InboundMessage, message_id)
            if row is not None and account_id not in row.signalled_account_ids:
                row.signalled_account_ids = [*row.signalled_account_ids, account_id]
                session.add(row)
                session.commit()

    def mark_routed(self, message_id: int) -> None:
        with Session(self._engine) as session:
            row = session.get(InboundMessage, message_id)
            if row is not None:
                row.routed_at = _utcnow()
                row.claimed_until = None
                session.add(row)
                session.commit()

    def inbound_messages(self, from_phone: str | None = None) -> list[InboundMessage]:
        """Every stored inbound SMS, or those from one number (``open_body(message)`` reads a text)."""
        with Session(self._engine) as session:
            query = select(InboundMessage).order_by(col(InboundMessage.id))
            if from_phone is not None:
                query = query.where(InboundMessage.phone_hash == self.phone_hash(from_phone))
            return list(session.exec(query).all())

    @staticmethod
    def _inbound(session: Session, provider: str, provider_message_id: str) -> InboundMessage | None:
        return session.exec(
            select(InboundMessage).where(
                InboundMessage.provider == provider,
                InboundMessage.provider_message_id == provider_message_id,
            )
        ).first()

    # --- payment notifications --------------------------------------------------------------------

    def record_payment(self, reference: str, account_id: str, amount: Decimal) -> PaymentNotification:
        """The stored notification for this reference, storing it when new.

        The reference is the primary key: of two concurrent first deliveries one insert fails and
        that request reads the other's row.
        """
        with Session(self._engine) as session:
            row = session.get(PaymentNotification, reference)
            if row is None:
                session.add(
                    PaymentNotification(reference=reference, account_id=account_id, amount=str(amount))
                )
                self._commit_unless_duplicate(session)
                row = session.get(PaymentNotification, reference)
                assert row is not None
            return row

    def payment(self, reference: str) -> PaymentNotification | None:
        with Session(self._engine) as session:
            return session.get(PaymentNotification, reference)

    def claim_payment(self, reference: str) -> bool:
        """Take the notification for signalling; False when it is signalled or held by another request."""
        now = int(time.time())
        statement = (
            update(PaymentNotification)
            .where(
                col(PaymentNotification.reference) == reference,
                col(PaymentNotification.signalled_at).is_(None),
                or_(
                    col(PaymentNotification.claimed_until).is_(None),
                    col(PaymentNotification.claimed_until) < now,
                ),
            )
            .values(claimed_until=now + CLAIM_SECONDS)
        )
        with self._engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def release_payment(self, reference: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(PaymentNotification)
                .where(col(PaymentNotification.reference) == reference)
                .values(claimed_until=None)
            )

    def mark_payment_signalled(self, reference: str) -> None:
        with Session(self._engine) as session:
            row = session.get(PaymentNotification, reference)
            if row is not None:
                row.signalled_at = _utcnow()
                row.claimed_until = None
                session.add(row)
                session.commit()

    # --- delivery status --------------------------------------------------------------------------

    def advance_delivery(
        self, provider_message_id: str, account_id: str, status: str, *, permanent: bool = False
    ) -> DeliveryUpdate:
        """Move the message to ``status`` unless it is already there or further on.

        A late ``sent`` after ``delivered`` changes nothing; of two final states the first stays.
        The move is one conditional update (or the first insert), so concurrent receipts cannot
        move the status backwards either.
        """
        rank = DELIVERY_RANKS[status]
        now = _utcnow()
        try:
            with Session(self._engine) as session:
                session.add(
                    DeliveryStatus(
                        provider_message_id=provider_message_id,
                        account_id=account_id,
                        status=status,
                        rank=rank,
                        permanent=permanent,
                        updated_at=now,
                    )
                )
                session.commit()
            advanced = True
        except IntegrityError:
            statement = (
                update(DeliveryStatus)
                .where(
                    col(DeliveryStatus.provider_message_id) == provider_message_id,
                    col(DeliveryStatus.rank) < rank,
                )
                .values(status=status, rank=rank, permanent=permanent, updated_at=now)
            )
            with self._engine.begin() as connection:
                advanced = connection.execute(statement).rowcount == 1
        with Session(self._engine) as session:
            current = session.get(DeliveryStatus, provider_message_id)
            assert current is not None
            return DeliveryUpdate(advanced=advanced, current=current)

    def delivery(self, provider_message_id: str) -> DeliveryStatus | None:
        with Session(self._engine) as session:
            return session.get(DeliveryStatus, provider_message_id)

    def mark_undeliverable_signalled(self, provider_message_id: str) -> None:
        with Session(self._engine) as session:
            row = session.get(DeliveryStatus, provider_message_id)
            if row is not None:
                row.undeliverable_signalled_at = _utcnow()
                session.add(row)
                session.commit()

    # --- webhook signatures -----------------------------------------------------------------------

    def claim_signature(self, digest: str, expires_at: int) -> bool:
        """Record a signature as used; False when it was used before (a replay).

        The digest is the primary key, so of two concurrent uses exactly one insert succeeds, on any
        number of API replicas sharing the database. Expired entries are deleted on the way.
        """
        with self._engine.begin() as connection:
            connection.execute(delete(SeenSignature).where(col(SeenSignature.expires_at) < int(time.time())))
        try:
            with Session(self._engine) as session:
                session.add(SeenSignature(digest=digest, expires_at=expires_at))
                session.commit()
        except IntegrityError:
            return False
        return True

    def release_signature(self, digest: str) -> None:
        """The request failed: its sender may retry it with the same signature."""
        with self._engine.begin() as connection:
            connection.execute(delete(SeenSignature).where(col(SeenSignature.digest) == digest))
