"""The API's tables: which accounts a phone number belongs to, every inbound SMS, every payment
notification; and a small synchronous store over them (handlers call it from a thread).

Inbound messages and payment notifications are keyed by the provider's id, which makes webhooks
idempotent: a replay finds its row already routed and signals nothing. A row is written *before*
signalling and marked routed after, so a message is never lost even when Temporal is down; a
delivery retried after a partial failure skips the accounts already signalled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import JSON, Column, Engine, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PhoneIndexEntry(SQLModel, table=True):
    """One phone number → one account; a phone may belong to several accounts."""

    __tablename__ = "phone_index"
    __table_args__ = (UniqueConstraint("phone", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(index=True)
    account_id: str = Field(index=True)
    registered_at: datetime = Field(default_factory=_utcnow)


class InboundMessage(SQLModel, table=True):
    """Every inbound SMS, matched or not: never lost."""

    __tablename__ = "inbound_message"
    __table_args__ = (UniqueConstraint("provider", "provider_message_id"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str
    provider_message_id: str = Field(index=True)
    from_phone: str = Field(index=True)
    body: str
    received_at: datetime = Field(default_factory=_utcnow)
    matched_account_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    signalled_account_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    routed_at: datetime | None = None


class PaymentNotification(SQLModel, table=True):
    """One payment notification per reference: a replay answers "duplicate" without signalling."""

    __tablename__ = "payment_notification"

    reference: str = Field(primary_key=True)
    account_id: str = Field(index=True)
    amount: Decimal = Field(max_digits=18, decimal_places=2)
    received_at: datetime = Field(default_factory=_utcnow)
    signalled_at: datetime | None = None


class OptOut(SQLModel, table=True):
    """A number that asked for no more SMS: kept beyond any one workflow, for every account on it."""

    __tablename__ = "opt_out"

    phone: str = Field(primary_key=True)
    account_id: str
    opted_out_at: datetime = Field(default_factory=_utcnow)


API_TABLES = [
    PhoneIndexEntry.__table__,  # type: ignore[attr-defined]
    InboundMessage.__table__,  # type: ignore[attr-defined]
    PaymentNotification.__table__,  # type: ignore[attr-defined]
    OptOut.__table__,  # type: ignore[attr-defined]
]


def create_tables(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine, tables=API_TABLES)


class PhoneIndex:
    """Synchronous access to the API's tables."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- phone index ------------------------------------------------------------------------------

    def register(self, phone: str, account_id: str) -> None:
        """Map ``phone`` to ``account_id``; registering the same pair again is harmless."""
        with Session(self._engine) as session:
            exists = session.exec(
                select(PhoneIndexEntry.id).where(
                    PhoneIndexEntry.phone == phone, PhoneIndexEntry.account_id == account_id
                )
            ).first()
            if exists is not None:
                return
            session.add(PhoneIndexEntry(phone=phone, account_id=account_id))
            try:
                session.commit()
            except IntegrityError:  # registered concurrently
                session.rollback()

    def replace(self, account_id: str, phone: str) -> None:
        """The account's number changed: it is reached at ``phone`` only."""
        with Session(self._engine) as session:
            for row in session.exec(
                select(PhoneIndexEntry).where(PhoneIndexEntry.account_id == account_id)
            ).all():
                session.delete(row)
            session.commit()
        self.register(phone, account_id)

    def record_opt_out(self, phone: str, account_id: str) -> None:
        with Session(self._engine) as session:
            if session.get(OptOut, phone) is None:
                session.add(OptOut(phone=phone, account_id=account_id))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()

    def is_opted_out(self, phone: str) -> bool:
        with Session(self._engine) as session:
            return session.get(OptOut, phone) is not None

    def accounts_for(self, phone: str) -> list[str]:
        with Session(self._engine) as session:
            rows = session.exec(
                select(PhoneIndexEntry.account_id)
                .where(PhoneIndexEntry.phone == phone)
                .order_by(PhoneIndexEntry.id)  # type: ignore[arg-type]
            ).all()
            return list(rows)

    # --- inbound messages -------------------------------------------------------------------------

    def record_inbound(
        self, provider: str, provider_message_id: str, from_phone: str, body: str
    ) -> InboundMessage:
        """The stored message for this provider id, storing it (with its matches) when new."""
        with Session(self._engine) as session:
            row = self._inbound(session, provider, provider_message_id)
            if row is None:
                session.add(
                    InboundMessage(
                        provider=provider,
                        provider_message_id=provider_message_id,
                        from_phone=from_phone,
                        body=body,
                        matched_account_ids=self.accounts_for(from_phone),
                    )
                )
                try:
                    session.commit()
                except IntegrityError:  # the same message stored concurrently
                    session.rollback()
                row = self._inbound(session, provider, provider_message_id)
                assert row is not None
            return row

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
                session.add(row)
                session.commit()

    def inbound_messages(self, from_phone: str | None = None) -> list[InboundMessage]:
        with Session(self._engine) as session:
            query = select(InboundMessage).order_by(InboundMessage.id)  # type: ignore[arg-type]
            if from_phone is not None:
                query = query.where(InboundMessage.from_phone == from_phone)
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
        """The stored notification for this reference, storing it when new."""
        with Session(self._engine) as session:
            row = session.get(PaymentNotification, reference)
            if row is None:
                session.add(PaymentNotification(reference=reference, account_id=account_id, amount=amount))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                row = session.get(PaymentNotification, reference)
                assert row is not None
            return row

    def mark_payment_signalled(self, reference: str) -> None:
        with Session(self._engine) as session:
            row = session.get(PaymentNotification, reference)
            if row is not None:
                row.signalled_at = _utcnow()
                session.add(row)
                session.commit()
