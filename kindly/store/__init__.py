"""The store: the application database (SQLite or PostgreSQL), one module per family of tables.

* ``audit``, ``outbox``: the audit log and the send outbox (``AuditStore``), written by activities;
* ``phones``: the phone index and opt-outs (``PhoneBook``); ``inbound``: inbound SMS and payment
  notifications; ``receipts``: delivery statuses; ``signatures``: webhook signatures already used;
  ``PhoneIndex`` (``phone_index``) puts these behind one object for the API;
* ``work_queue``: the phone team's call tasks (``WorkQueue``); ``cases``: the specialists' cases and their
  notes (``SpecialistCases``); ``console_sessions``: the staff console's sessions (``ConsoleSessions``);
* ``self_service_links``: the links reminders end with, by the hash of their token (``SelfServiceLinks``);
* ``alarms``: the provider alarms that hold SMS sending until an operator clears them (``ProviderAlarms``);
* ``complaints``: complaints about how the lender collects, as the workflows keep them (``ComplaintStore``);
* ``claims``: how one request takes a row whose work must happen once; ``writes``: inserts that race
  duplicates;
* ``engine``, ``migrate``: the engine, and the schema's Alembic migrations (``migrations/``).
"""

from kindly.store.alarms import AlarmNotFoundError, ProviderAlarm, ProviderAlarms
from kindly.store.audit import CONSOLE_ACTION, DELIVERY_RECEIPT, AuditEntry, AuditLog
from kindly.store.call_tasks import CallRecord, CallTask, NewCallTask, TaskUnavailable
from kindly.store.cases import CaseNote, CaseUnavailable, NewCase, SpecialistCase, SpecialistCases
from kindly.store.complaints import ComplaintStore, ComplaintView
from kindly.store.console_sessions import ConsoleSession, ConsoleSessions
from kindly.store.engine import make_engine
from kindly.store.inbound import InboundMessage, PaymentNotification
from kindly.store.migrate import current_revision, head_revision, upgrade
from kindly.store.outbox import ANSWER_LOST, AuditStore, OutboxEntry
from kindly.store.phone_index import PhoneIndex
from kindly.store.phones import OptOut, PhoneBook, normalise_phone
from kindly.store.receipts import FAILED_STATES, DeliveryStatus, DeliveryUpdate
from kindly.store.self_service_links import LinkExpired, LinkTarget, SelfServiceLinks
from kindly.store.work_queue import WorkQueue

__all__ = [
    "ANSWER_LOST",
    "CONSOLE_ACTION",
    "DELIVERY_RECEIPT",
    "FAILED_STATES",
    "AlarmNotFoundError",
    "AuditEntry",
    "AuditLog",
    "AuditStore",
    "CallRecord",
    "CallTask",
    "CaseNote",
    "CaseUnavailable",
    "ComplaintStore",
    "ComplaintView",
    "ConsoleSession",
    "ConsoleSessions",
    "DeliveryStatus",
    "DeliveryUpdate",
    "InboundMessage",
    "LinkExpired",
    "LinkTarget",
    "NewCallTask",
    "NewCase",
    "OptOut",
    "OutboxEntry",
    "PaymentNotification",
    "PhoneBook",
    "PhoneIndex",
    "ProviderAlarm",
    "ProviderAlarms",
    "SelfServiceLinks",
    "SpecialistCase",
    "SpecialistCases",
    "TaskUnavailable",
    "WorkQueue",
    "current_revision",
    "head_revision",
    "make_engine",
    "normalise_phone",
    "upgrade",
]
