"""``PhoneIndex``: the API's tables behind one object, for the API's handlers, which touch them all.
A thin facade: each family of tables has its own store (``PhoneBook`` for numbers and opt-outs, whose
methods this class inherits; ``inbound``, ``payments``, ``deliveries``, ``signatures``), which code
needing one family uses directly."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine

from kindly.keyring import KeyRing
from kindly.store.inbound import InboundMessage, InboundMessages, PaymentNotification, PaymentNotifications
from kindly.store.phones import PhoneBook
from kindly.store.receipts import DeliveryReceipts, DeliveryStatus, DeliveryUpdate
from kindly.store.signatures import SignatureLedger


class PhoneIndex(PhoneBook):
    """The phone index and opt-outs (``PhoneBook``), plus the inbound SMS, payment notifications,
    delivery statuses and webhook signatures; phone numbers go in and out through the key ring."""

    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        super().__init__(engine, keyring)
        self.inbound = InboundMessages(engine, keyring)
        self.payments = PaymentNotifications(engine)
        self.deliveries = DeliveryReceipts(engine)
        self.signatures = SignatureLedger(engine)

    # --- inbound messages -------------------------------------------------------------------------

    def open_body(self, message: InboundMessage) -> str:
        return self.inbound.open_body(message)

    def record_inbound(
        self, provider: str, provider_message_id: str, from_phone: str, body: str
    ) -> InboundMessage:
        return self.inbound.record(provider, provider_message_id, from_phone, body)

    def claim_inbound(self, message_id: int) -> bool:
        return self.inbound.claim(message_id)

    def release_inbound(self, message_id: int) -> None:
        self.inbound.release(message_id)

    def mark_signalled(self, message_id: int, account_id: str) -> None:
        self.inbound.mark_signalled(message_id, account_id)

    def mark_routed(self, message_id: int) -> None:
        self.inbound.mark_routed(message_id)

    def inbound_messages(self, from_phone: str | None = None) -> list[InboundMessage]:
        return self.inbound.messages(from_phone)

    # --- payment notifications --------------------------------------------------------------------

    def record_payment(self, reference: str, account_id: str, amount: Decimal) -> PaymentNotification:
        return self.payments.record(reference, account_id, amount)

    def payment(self, reference: str) -> PaymentNotification | None:
        return self.payments.get(reference)

    def claim_payment(self, reference: str) -> bool:
        return self.payments.claim(reference)

    def release_payment(self, reference: str) -> None:
        self.payments.release(reference)

    def mark_payment_signalled(self, reference: str) -> None:
        self.payments.mark_signalled(reference)

    # --- delivery statuses ------------------------------------------------------------------------

    def advance_delivery(
        self, provider_message_id: str, account_id: str, status: str, *, permanent: bool = False
    ) -> DeliveryUpdate:
        return self.deliveries.advance(provider_message_id, account_id, status, permanent=permanent)

    def delivery(self, provider_message_id: str) -> DeliveryStatus | None:
        return self.deliveries.get(provider_message_id)

    def mark_undeliverable_signalled(self, provider_message_id: str) -> None:
        self.deliveries.mark_undeliverable_signalled(provider_message_id)

    # --- webhook signatures -----------------------------------------------------------------------

    def claim_signature(self, digest: str, expires_at: int) -> bool:
        return self.signatures.claim(digest, expires_at)

    def release_signature(self, digest: str) -> None:
        self.signatures.release(digest)
