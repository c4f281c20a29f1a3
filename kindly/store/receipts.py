"""Delivery statuses: each sent message's status as its carrier's receipts report it. Receipts arrive
late, twice and out of order, so the status only ever moves forward."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col

from kindly.store.clock import utcnow

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
    updated_at: datetime = Field(default_factory=utcnow)
    undeliverable_signalled_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryUpdate:
    """The outcome of a receipt: whether it moved the status, and the status now."""

    advanced: bool
    current: DeliveryStatus


class DeliveryReceipts:
    """Synchronous access to the delivery statuses; the API's receipt handler calls it from a thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def advance(
        self, provider_message_id: str, account_id: str, status: str, *, permanent: bool = False
    ) -> DeliveryUpdate:
        """Move the message to ``status`` unless it is already there or further on.

        A late ``sent`` after ``delivered`` changes nothing; of two final states the first stays.
        The move is one conditional update (or the first insert), so concurrent receipts cannot
        move the status backwards either.
        """
        rank = DELIVERY_RANKS[status]
        now = utcnow()
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

    def get(self, provider_message_id: str) -> DeliveryStatus | None:
        with Session(self._engine) as session:
            return session.get(DeliveryStatus, provider_message_id)

    def mark_undeliverable_signalled(self, provider_message_id: str) -> None:
        with Session(self._engine) as session:
            row = session.get(DeliveryStatus, provider_message_id)
            if row is not None:
                row.undeliverable_signalled_at = utcnow()
                session.add(row)
                session.commit()
