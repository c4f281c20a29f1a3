"""The store: the application database (SQLite or PostgreSQL), one module per family of tables.

* ``audit``, ``outbox``: the audit log and the send outbox (``AuditStore``), written by activities;
* ``phones``: the phone index and opt-outs (``PhoneBook``); ``inbound``: inbound SMS and payment
  notifications; ``receipts``: delivery statuses; ``signatures``: webhook signatures already used;
  ``PhoneIndex`` (``phone_index``) puts these behind one object for the API;
* ``claims``: how one request takes a row whose work must happen once; ``writes``: inserts that race
  duplicates;
* ``engine``, ``migrate``: the engine, and the schema's Alembic migrations (``migrations/``).
"""

from kindly.store.audit import DELIVERY_RECEIPT, AuditEntry, AuditLog
from kindly.store.engine import make_engine
from kindly.store.inbound import InboundMessage, PaymentNotification
from kindly.store.migrate import current_revision, head_revision, upgrade
from kindly.store.outbox import ANSWER_LOST, AuditStore, OutboxEntry
from kindly.store.phone_index import PhoneIndex
from kindly.store.phones import OptOut, PhoneBook, normalise_phone
from kindly.store.receipts import FAILED_STATES, DeliveryStatus, DeliveryUpdate

__all__ = [
    "ANSWER_LOST",
    "DELIVERY_RECEIPT",
    "FAILED_STATES",
    "AuditEntry",
    "AuditLog",
    "AuditStore",
    "DeliveryStatus",
    "DeliveryUpdate",
    "InboundMessage",
    "OptOut",
    "OutboxEntry",
    "PaymentNotification",
    "PhoneBook",
    "PhoneIndex",
    "current_revision",
    "head_revision",
    "make_engine",
    "normalise_phone",
    "upgrade",
]
