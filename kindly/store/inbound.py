"""What reaches the API from outside: every inbound SMS and every payment notification, each written
*before* its workflow is signalled (so nothing is lost while Temporal is down) and signalled by the
one request that claims it (``kindly.store.claims``).

Inbound messages and payment notifications are keyed by the provider's id / the payment reference
(unique constraints, so a concurrent duplicate's insert fails instead of racing a check).

**Inbound texts are encrypted.** ``inbound_sms`` keeps the sender's hash and encrypted number
(``kindly.store.phones``) and the text encrypted too, in ``body_encrypted``
(``KeyRing.seal_text(text)``): a reply is personal data in itself ("I lost my job", health details).
A message from an unknown number is kept for an operator, who needs the number to follow it up.
``InboundMessages.open_body(message)`` reads the text; nothing else should read the columns.

Before inbound texts were encrypted, ``inbound_sms`` kept the text in clear in ``body``. That table is
kept (a new name would forget which messages were already routed, and a provider's retry of one would
reach the workflow again): the baseline migration adds the nullable column ``body_encrypted`` to it.
New rows store ``""`` in ``body`` (the column stays, ``NOT NULL``, for older processes still
inserting) and the ciphertext in ``body_encrypted``; a row with ``body_encrypted`` ``NULL`` was written
by an older version and its ``body`` is read as it is. The column, not the look of the value, tells the
two apart: a reply may itself read ``k1:abc…``, and guessing from a failed decryption would hand out
ciphertext as text under a wrong key instead of raising ``DecryptionError``. Old rows keep their text
in clear until they are deleted.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Column, Engine, UniqueConstraint
from sqlmodel import AutoString, Field, Session, SQLModel, col, select

from kindly.keyring import KeyRing
from kindly.store.claims import Lease
from kindly.store.clock import unix_now, utcnow
from kindly.store.phones import accounts_with, phone_hash, seal_phone
from kindly.store.writes import commit_unless_duplicate

# How long a request that is signalling a message or payment holds it against concurrent duplicates.
CLAIM_SECONDS = 60


class InboundMessage(SQLModel, table=True):
    """Every inbound SMS, matched or not: never lost. The sender's number is hashed and encrypted, the
    text encrypted: read it with ``InboundMessages.open_body``, never from the columns."""

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
    # ``body`` here so that no reader takes it for the text (``InboundMessages.open_body`` reads both).
    legacy_body: str = Field(default="", sa_column=Column("body", AutoString, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)
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
    received_at: datetime = Field(default_factory=utcnow)
    claimed_until: int | None = None
    signalled_at: datetime | None = None


_INBOUND_LEASE = Lease(InboundMessage.__table__, "id", "claimed_until", done="routed_at")  # type: ignore[attr-defined]
_PAYMENT_LEASE = Lease(
    PaymentNotification.__table__,  # type: ignore[attr-defined]
    "reference",
    "claimed_until",
    done="signalled_at",
)


class InboundMessages:
    """Synchronous access to the inbound SMS; the number and text go in and out through the key ring."""

    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self._engine = engine
        self._keyring = keyring

    def open_body(self, message: InboundMessage) -> str:
        """The text of an inbound SMS (``DecryptionError`` with a wrong key). A row written before
        texts were encrypted (``body_encrypted`` NULL) holds it in clear: returned as it is."""
        if message.body_encrypted is None:
            return message.legacy_body
        return self._keyring.open_text(message.body_encrypted)

    def record(self, provider: str, provider_message_id: str, from_phone: str, body: str) -> InboundMessage:
        """The stored message for this provider id, storing it (with its matches) when new; the
        number and ``body`` are stored encrypted."""
        digest = phone_hash(self._keyring, from_phone)
        with Session(self._engine) as session:
            row = _inbound(session, provider, provider_message_id)
            if row is None:
                session.add(
                    InboundMessage(
                        provider=provider,
                        provider_message_id=provider_message_id,
                        phone_hash=digest,
                        phone_encrypted=seal_phone(self._keyring, from_phone),
                        body_encrypted=self._keyring.seal_text(body),
                        matched_account_ids=accounts_with(session, digest),
                    )
                )
                commit_unless_duplicate(session)
                row = _inbound(session, provider, provider_message_id)
                assert row is not None
            return row

    def claim(self, message_id: int) -> bool:
        """Take the message for routing; False when it is routed or another request holds it."""
        with self._engine.begin() as connection:
            return _INBOUND_LEASE.claim(connection, message_id, unix_now() + CLAIM_SECONDS)

    def release(self, message_id: int) -> None:
        """Routing failed: let the sender's retry take the message again."""
        with self._engine.begin() as connection:
            _INBOUND_LEASE.release(connection, message_id)

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
                row.routed_at = utcnow()
                row.claimed_until = None
                session.add(row)
                session.commit()

    def messages(self, from_phone: str | None = None) -> list[InboundMessage]:
        """Every stored inbound SMS, or those from one number (``open_body(message)`` reads a text)."""
        with Session(self._engine) as session:
            query = select(InboundMessage).order_by(col(InboundMessage.id))
            if from_phone is not None:
                query = query.where(InboundMessage.phone_hash == phone_hash(self._keyring, from_phone))
            return list(session.exec(query).all())


def _inbound(session: Session, provider: str, provider_message_id: str) -> InboundMessage | None:
    return session.exec(
        select(InboundMessage).where(
            InboundMessage.provider == provider,
            InboundMessage.provider_message_id == provider_message_id,
        )
    ).first()


class PaymentNotifications:
    """Synchronous access to the payment notifications."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, reference: str, account_id: str, amount: Decimal) -> PaymentNotification:
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
                commit_unless_duplicate(session)
                row = session.get(PaymentNotification, reference)
                assert row is not None
            return row

    def get(self, reference: str) -> PaymentNotification | None:
        with Session(self._engine) as session:
            return session.get(PaymentNotification, reference)

    def claim(self, reference: str) -> bool:
        """Take the notification for signalling; False when it is signalled or held by another request."""
        with self._engine.begin() as connection:
            return _PAYMENT_LEASE.claim(connection, reference, unix_now() + CLAIM_SECONDS)

    def release(self, reference: str) -> None:
        """Signalling failed: let the sender's retry take the notification again."""
        with self._engine.begin() as connection:
            _PAYMENT_LEASE.release(connection, reference)

    def mark_signalled(self, reference: str) -> None:
        with Session(self._engine) as session:
            row = session.get(PaymentNotification, reference)
            if row is not None:
                row.signalled_at = utcnow()
                row.claimed_until = None
                session.add(row)
                session.commit()
