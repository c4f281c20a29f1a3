"""The application database on both backends it supports: SQLite and PostgreSQL.

Every test here runs once per backend with a fresh schema (a new SQLite file, a new PostgreSQL
database) and checks the behaviour the workflow's idempotency rests on: audit rows once per event
key, one outbox row per touchpoint claimed from many threads at once, duplicates answered rather
than raised, timestamps read back as written whatever the server's time zone.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    Table,
    UniqueConstraint,
    create_engine,
    inspect,
    make_url,
    text,
)
from sqlalchemy.exc import IntegrityError

from kindly.errors import DecryptionError
from kindly.keyring import KeyRing
from kindly.store import AuditEntry, AuditStore, InboundMessage, OutboxEntry, PhoneIndex, make_engine, upgrade
from kindly.store.writes import _insert_each_ignoring_duplicates
from tests.databases import at_once, database_url, postgres_database_url  # noqa: F401  (fixtures)
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

AT = datetime(2026, 3, 2, 9, 30, 15, 123000, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> AuditStore:
    return AuditStore(engine)


def as_utc(value: datetime) -> datetime:
    """Stored timestamps come back naive (UTC) from both backends."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def audit(key: str, account_id: str = "LN-1", kind: str = "deferred", **fields: Any) -> AuditEntry:
    return AuditEntry(
        event_key=key, account_id=account_id, at=AT, kind=kind, detail=f"{kind} {key}", **fields
    )


def outbox(key: str, account_id: str = "LN-1", touchpoint: int = 1, **fields: Any) -> OutboxEntry:
    return OutboxEntry(
        idempotency_key=key, account_id=account_id, touchpoint=touchpoint, channel="sms", **fields
    )


# --- the engine ----------------------------------------------------------------------------------


def test_make_engine_creates_every_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"audit_log", "outbox"} <= tables


def test_make_engine_is_safe_to_call_again_and_from_many_processes_at_once(database_url: str) -> None:  # noqa: F811
    """Scaled workers start together against an empty database: creating the tables must not race."""
    engines = at_once(6, lambda: make_engine(database_url))
    try:
        assert {"audit_log", "outbox"} <= set(inspect(engines[0]).get_table_names())
        again = make_engine(database_url)
        AuditStore(again).append([audit("ev-1")])
        assert len(AuditStore(engines[-1]).audit_for("LN-1")) == 1
        again.dispose()
    finally:
        for engine in engines:
            engine.dispose()


def test_postgresql_url_without_driver_uses_psycopg(postgres_database_url: str) -> None:  # noqa: F811
    """``postgresql://`` would mean psycopg2, which Kindly does not install; psycopg 3 is used."""
    plain = make_url(postgres_database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    engine = make_engine(plain)
    try:
        assert engine.dialect.driver == "psycopg"
        assert AuditStore(engine).append([audit("ev-1")]) == 1
    finally:
        engine.dispose()


def test_postgresql_connections_dropped_by_the_server_are_replaced(postgres_database_url: str) -> None:  # noqa: F811
    """A database restart or failover closes pooled connections; the next use must reconnect."""
    engine = make_engine(postgres_database_url)
    store = AuditStore(engine)
    try:
        store.append([audit("ev-1")])
        admin = create_engine(postgres_database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        admin.dispose()
        assert killed >= 1
        assert store.append([audit("ev-2")]) == 1
        assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1", "ev-2"]
    finally:
        engine.dispose()


# --- the audit log -------------------------------------------------------------------------------


def test_audit_rows_are_written_once_per_event_key(store: AuditStore) -> None:
    assert store.append([audit("ev-1"), audit("ev-2")]) == 2
    assert store.append([audit("ev-2"), audit("ev-3")]) == 1
    assert store.append([audit("ev-1"), audit("ev-3")]) == 0
    assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1", "ev-2", "ev-3"]


def test_audit_duplicate_keys_within_one_batch_count_once(store: AuditStore) -> None:
    assert store.append([audit("ev-1"), audit("ev-1"), audit("ev-2")]) == 2
    assert len(store.audit_for("LN-1")) == 2


def test_audit_rows_are_per_account_and_keep_every_field(store: AuditStore) -> None:
    store.append(
        [
            audit("a/ev-1", account_id="LN-A", touchpoint=3, template="follow_up"),
            audit("b/ev-1", account_id="LN-B", kind="sms_sent", provider="webhook", outcome="sent"),
        ]
    )
    [row] = store.audit_for("LN-B")
    assert (row.kind, row.provider, row.outcome, row.touchpoint) == ("sms_sent", "webhook", "sent", None)
    [row] = store.audit_for("LN-A")
    assert (row.touchpoint, row.template, row.detail) == (3, "follow_up", "deferred a/ev-1")
    assert store.audit_for("LN-C") == []


def test_timestamps_read_back_as_written_whatever_the_server_time_zone(store: AuditStore) -> None:
    """The test cluster runs in Asia/Shanghai: a UTC instant must not come back shifted by 8 hours."""
    store.append([audit("ev-1")])
    [row] = store.audit_for("LN-1")
    assert as_utc(row.at) == AT
    assert abs(as_utc(row.recorded_at) - datetime.now(UTC)) < timedelta(minutes=1)

    store.claim(outbox("tp-1"))
    store.complete("tp-1", "sent", "SM-1", audit("tp-1/sms_sent", kind="sms_sent"))
    sent = store.outbox_by_provider_id("SM-1")
    assert sent is not None and sent.completed_at is not None
    assert abs(as_utc(sent.completed_at) - datetime.now(UTC)) < timedelta(minutes=1)
    assert abs(as_utc(sent.created_at) - datetime.now(UTC)) < timedelta(minutes=1)


# --- the outbox ----------------------------------------------------------------------------------


def test_claim_creates_a_sending_row_and_counts_attempts(store: AuditStore) -> None:
    """A claimed row says ``sending`` until its attempt's answer is known: refused (``release``: back to
    ``pending``), or completed."""
    first = store.claim(outbox("tp-1", template="first_overdue"))
    assert (first.status, first.attempts, first.template) == ("sending", 1, "first_overdue")
    store.release("tp-1")
    [released] = store.outbox_for("LN-1")
    assert released.status == "pending"
    # A retry of the activity claims the same row; what it passes for a new row is ignored.
    again = store.claim(outbox("tp-1", template="something_else", touchpoint=9))
    assert (again.status, again.attempts, again.template, again.touchpoint) == (
        "sending",
        2,
        "first_overdue",
        1,
    )
    assert [row.idempotency_key for row in store.outbox_for("LN-1")] == ["tp-1"]


def test_claim_from_many_threads_at_once_makes_one_row(store: AuditStore) -> None:
    """Concurrent claims of one key race on the primary key: one inserts the row, the others skip it."""
    rows = at_once(8, lambda: store.claim(outbox("tp-race")))
    assert {row.idempotency_key for row in rows} == {"tp-race"}
    [stored] = store.outbox_for("LN-1")
    assert stored.status == "sending"
    assert stored.attempts == 8


def test_concurrent_claims_of_one_key_count_every_attempt(store: AuditStore) -> None:
    """The attempt counter is incremented in the database: no concurrent claim's increment is lost,
    and each claim reads back the count its own increment made."""
    for round_ in range(1, 6):
        rows = at_once(8, lambda: store.claim(outbox("tp-count")))
        assert sorted(row.attempts for row in rows) == list(range(8 * round_ - 7, 8 * round_ + 1))
    [stored] = store.outbox_for("LN-1")
    assert stored.attempts == 40


def test_claim_writes_its_decisions_once_and_returns_a_detached_row(store: AuditStore) -> None:
    first = store.claim(outbox("tp-1"), [audit("ev-1"), audit("ev-2"), audit("ev-1")])
    assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1", "ev-2"]
    # A retried activity passes the same decisions again (and maybe one more): no row is doubled.
    again = store.claim(outbox("tp-1"), [audit("ev-2"), audit("ev-3")])
    assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1", "ev-2", "ev-3"]
    assert (first.attempts, again.attempts, again.status) == (1, 2, "sending")
    # The returned rows belong to no session: reading them needs no database.
    assert (first.idempotency_key, first.channel, first.touchpoint) == ("tp-1", "sms", 1)
    assert abs(as_utc(first.created_at) - datetime.now(UTC)) < timedelta(minutes=1)
    # Decisions already written by ``append`` (a window-closed attempt before) are not doubled either.
    store.append([audit("ev-4")])
    store.claim(outbox("tp-2", touchpoint=2), [audit("ev-4"), audit("ev-5")])
    assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1", "ev-2", "ev-3", "ev-4", "ev-5"]


def test_claim_and_its_decisions_are_one_transaction(store: AuditStore) -> None:
    """A claim that fails (here a row the database refuses: no account) writes none of its decisions."""
    broken = outbox("tp-1")
    broken.account_id = None  # type: ignore[assignment]
    with pytest.raises(IntegrityError):
        store.claim(broken, [audit("ev-1")])
    assert store.audit_for("LN-1") == []
    assert store.outbox_for("LN-1") == []
    store.claim(outbox("tp-1"), [audit("ev-1")])
    assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1"]
    assert [row.attempts for row in store.outbox_for("LN-1")] == [1]


def test_concurrent_claims_with_the_same_decisions_write_them_once(store: AuditStore) -> None:
    """A retried activity beside its timed-out first attempt: both claim, the decisions exist once."""
    decisions = [audit("ev-1"), audit("ev-2")]
    rows = at_once(6, lambda: store.claim(outbox("tp-1"), decisions))
    assert sorted(row.attempts for row in rows) == [1, 2, 3, 4, 5, 6]
    assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1", "ev-2"]


def test_concurrent_completes_write_the_audit_row_once(store: AuditStore) -> None:
    store.claim(outbox("tp-1"))
    at_once(6, lambda: store.complete("tp-1", "sent", "SM-1", audit("tp-1/sms_sent", kind="sms_sent")))
    [row] = store.audit_for("LN-1")
    assert row.event_key == "tp-1/sms_sent"
    assert [(row.status, row.provider_message_id) for row in store.outbox_for("LN-1")] == [("sent", "SM-1")]


def test_portable_insert_skips_duplicate_keys_and_raises_other_errors(postgres_database_url: str) -> None:  # noqa: F811
    """The row-by-row insert for databases without ``ON CONFLICT`` (tried here on PostgreSQL)."""
    engine = make_engine(postgres_database_url)
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    try:
        AuditStore(engine).append([audit("ev-1")])
        rows = [audit(key).model_dump(exclude={"id"}) for key in ("ev-1", "ev-2", "ev-1", "ev-3")]
        with engine.begin() as connection:
            assert _insert_each_ignoring_duplicates(connection, table, rows, ("event_key",)) == 2
        assert [row.event_key for row in AuditStore(engine).audit_for("LN-1")] == ["ev-1", "ev-2", "ev-3"]
        broken = {**audit("ev-4").model_dump(exclude={"id"}), "detail": None}
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _insert_each_ignoring_duplicates(connection, table, [broken], ("event_key",))
        assert len(AuditStore(engine).audit_for("LN-1")) == 3
    finally:
        engine.dispose()


def test_complete_marks_the_row_and_audits_once(store: AuditStore) -> None:
    store.claim(outbox("tp-1"))
    store.complete("tp-1", "sent", "SM-1", audit("tp-1/sms_sent", kind="sms_sent", outcome="sent"))
    # A retried activity that completes again changes nothing and writes no second audit row.
    store.complete("tp-1", "sent", "SM-1", audit("tp-1/sms_sent", kind="sms_sent", outcome="sent"))
    claimed = store.claim(outbox("tp-1"))
    assert (claimed.status, claimed.provider_message_id) == ("sent", "SM-1")
    assert [row.event_key for row in store.audit_for("LN-1")] == ["tp-1/sms_sent"]
    found = store.outbox_by_provider_id("SM-1")
    assert found is not None and found.idempotency_key == "tp-1"
    assert store.outbox_by_provider_id("SM-unknown") is None


def test_complete_without_a_claimed_row_still_audits(store: AuditStore) -> None:
    store.complete("tp-none", "rejected", None, audit("tp-none/sms_failed", kind="sms_failed"))
    assert store.outbox_for("LN-1") == []
    assert [row.kind for row in store.audit_for("LN-1")] == ["sms_failed"]


def test_outbox_rows_are_per_account(store: AuditStore) -> None:
    store.claim(outbox("a/tp-1", account_id="LN-A"))
    store.claim(outbox("a/tp-2", account_id="LN-A", touchpoint=2))
    store.claim(outbox("b/tp-1", account_id="LN-B"))
    assert sorted(row.idempotency_key for row in store.outbox_for("LN-A")) == ["a/tp-1", "a/tp-2"]
    assert [row.idempotency_key for row in store.outbox_for("LN-B")] == ["b/tp-1"]


# --- cancelled touchpoints -------------------------------------------------------------------------


def test_cancel_closes_a_pending_row_with_its_reason_once(store: AuditStore) -> None:
    store.claim(outbox("tp-1", template="first_overdue"))
    store.release("tp-1")  # the gateway refused the attempt
    status = store.cancel(outbox("tp-1", template="other"), "repaid", [audit("ev-1"), audit("ev-2")])
    assert status == "cancelled"
    [row] = store.outbox_for("LN-1")
    assert (row.status, row.detail, row.attempts, row.template) == ("cancelled", "repaid", 1, "first_overdue")
    assert row.completed_at is not None
    assert abs(as_utc(row.completed_at) - datetime.now(UTC)) < timedelta(minutes=1)
    # A retried cancel_send: the same answer, the decisions not doubled (one more is written).
    assert store.cancel(outbox("tp-1"), "repaid", [audit("ev-2"), audit("ev-3")]) == "cancelled"
    assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1", "ev-2", "ev-3"]
    [row] = store.outbox_for("LN-1")
    assert (row.status, row.detail) == ("cancelled", "repaid")
    # A late attempt's claim finds it cancelled (send_sms then refuses to send).
    claimed = store.claim(outbox("tp-1"))
    assert (claimed.status, claimed.detail, claimed.attempts) == ("cancelled", "repaid", 2)


def test_cancel_of_a_send_whose_answer_was_lost_says_it_may_have_gone(store: AuditStore) -> None:
    """An attempt claimed and never answered (its worker stopped mid-request, a timeout): the gateway may
    have the message, so the caller hears ``unknown`` and counts it as sent; a retried call agrees."""
    store.claim(outbox("tp-1"))
    assert store.cancel(outbox("tp-1"), "number_changed") == "unknown"
    [row] = store.outbox_for("LN-1")
    assert (row.status, row.detail) == ("cancelled", "number_changed; an attempt's answer was lost")
    assert store.cancel(outbox("tp-1"), "number_changed") == "unknown"


def test_cancel_leaves_a_completed_row_as_it_is(store: AuditStore) -> None:
    """An attempt that completed first decides: the answer is what happened to the message."""
    store.claim(outbox("tp-1"))
    store.complete("tp-1", "sent", "SM-1", audit("tp-1/sms_sent", kind="sms_sent"))
    store.claim(outbox("tp-2", touchpoint=2))
    store.complete("tp-2", "rejected", None, audit("tp-2/sms_failed", kind="sms_failed"))
    assert store.cancel(outbox("tp-1"), "repaid", [audit("ev-1")]) == "sent"
    assert store.cancel(outbox("tp-1"), "repaid", [audit("ev-1")]) == "sent"
    assert store.cancel(outbox("tp-2", touchpoint=2), "opted_out") == "rejected"
    rows = {row.idempotency_key: row for row in store.outbox_for("LN-1")}
    assert (rows["tp-1"].status, rows["tp-1"].provider_message_id, rows["tp-1"].detail) == (
        "sent",
        "SM-1",
        None,
    )
    assert (rows["tp-2"].status, rows["tp-2"].detail) == ("rejected", None)
    # The decisions are written all the same, once.
    assert [row.event_key for row in store.audit_for("LN-1")] == ["tp-1/sms_sent", "tp-2/sms_failed", "ev-1"]


def test_cancel_without_a_claimed_row_creates_it_cancelled(store: AuditStore) -> None:
    """No attempt got as far as the claim: the row is created cancelled, so a late attempt sends nothing."""
    entry = outbox("tp-3", touchpoint=3, template="follow_up")
    assert store.cancel(entry, "opted_out", [audit("ev-1")]) == "cancelled"
    assert store.cancel(entry, "opted_out", [audit("ev-1")]) == "cancelled"
    [row] = store.outbox_for("LN-1")
    assert (row.status, row.detail, row.touchpoint, row.template, row.channel, row.attempts) == (
        "cancelled",
        "opted_out",
        3,
        "follow_up",
        "sms",
        0,
    )
    assert row.completed_at is not None and row.provider_message_id is None
    assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1"]


def test_concurrent_cancels_of_one_key_make_one_cancelled_row(store: AuditStore) -> None:
    statuses = at_once(6, lambda: store.cancel(outbox("tp-race"), "repaid", [audit("ev-1")]))
    assert statuses == ["cancelled"] * 6
    assert [(row.status, row.detail) for row in store.outbox_for("LN-1")] == [("cancelled", "repaid")]
    assert [row.event_key for row in store.audit_for("LN-1")] == ["ev-1"]


LEGACY_OUTBOX = (
    "CREATE TABLE outbox ("
    " idempotency_key VARCHAR NOT NULL,"
    " account_id VARCHAR NOT NULL,"
    " touchpoint INTEGER NOT NULL,"
    " channel VARCHAR NOT NULL,"
    " template VARCHAR,"
    " status VARCHAR NOT NULL,"
    " provider_message_id VARCHAR,"
    " attempts INTEGER NOT NULL,"
    " created_at TIMESTAMP NOT NULL,"
    " completed_at TIMESTAMP,"
    " PRIMARY KEY (idempotency_key))"
)
"""``outbox`` as the version before cancelled touchpoints created it: no ``detail`` column."""

LEGACY_OUTBOX_INSERT = text(
    "INSERT INTO outbox (idempotency_key, account_id, touchpoint, channel, template, status,"
    " provider_message_id, attempts, created_at, completed_at)"
    " VALUES (:key, 'LN-1', :touchpoint, 'sms', 'first_overdue', :status, :message_id, 1,"
    " '2026-03-02 09:30:15', NULL)"
)
"""An insert of the older version, which names its columns (so it still works beside the new one)."""


def test_outbox_of_an_older_database_gets_the_detail_column(database_url: str) -> None:  # noqa: F811
    old = create_engine(database_url)
    with old.begin() as connection:
        connection.exec_driver_sql(LEGACY_OUTBOX)
        connection.exec_driver_sql("CREATE INDEX ix_outbox_account_id ON outbox (account_id)")
        connection.execute(
            LEGACY_OUTBOX_INSERT,
            [
                {"key": "old/tp-1", "touchpoint": 1, "status": "pending", "message_id": None},
                {"key": "old/tp-2", "touchpoint": 2, "status": "sent", "message_id": "SM-OLD"},
            ],
        )
    assert "detail" not in {c["name"] for c in inspect(old).get_columns("outbox")}

    engines = at_once(4, lambda: make_engine(database_url))  # processes starting together add it once
    engines.append(make_engine(database_url))
    try:
        assert "detail" in {c["name"] for c in inspect(old).get_columns("outbox")}
        store = AuditStore(engines[-1])
        rows = {row.idempotency_key: row for row in store.outbox_for("LN-1")}
        assert {key: (row.status, row.detail) for key, row in rows.items()} == {
            "old/tp-1": ("pending", None),
            "old/tp-2": ("sent", None),
        }
        assert as_utc(rows["old/tp-1"].created_at) == datetime(2026, 3, 2, 9, 30, 15, tzinfo=UTC)
        assert store.cancel(outbox("old/tp-1"), "repaid", [audit("ev-1")]) == "cancelled"
        assert store.cancel(outbox("old/tp-2", touchpoint=2), "repaid") == "sent"
        assert store.cancel(outbox("new/tp-3", touchpoint=3), "opted_out") == "cancelled"
        claimed = store.claim(outbox("old/tp-1"))
        assert (claimed.status, claimed.detail, claimed.attempts) == ("cancelled", "repaid", 2)
        # A process of the older version, still running beside the new one, inserts without the column.
        with old.begin() as connection:
            connection.execute(
                LEGACY_OUTBOX_INSERT,
                {"key": "old/tp-4", "touchpoint": 4, "status": "pending", "message_id": None},
            )
        assert store.claim(outbox("old/tp-4", touchpoint=4)).detail is None
        store.release("old/tp-4")
        assert store.cancel(outbox("old/tp-4", touchpoint=4), "repaid") == "cancelled"
        assert {row.idempotency_key: (row.status, row.detail) for row in store.outbox_for("LN-1")} == {
            "old/tp-1": ("cancelled", "repaid"),
            "old/tp-2": ("sent", None),
            "new/tp-3": ("cancelled", "opted_out"),
            "old/tp-4": ("cancelled", "repaid"),
        }
    finally:
        for engine in engines:
            engine.dispose()
        old.dispose()


# --- the API's tables: phone lookup, opt-outs, inbound SMS, payments, receipts, signatures ---------


def new_keyring() -> KeyRing:
    return KeyRing(keys={"k1": os.urandom(32)}, current_id="k1", hash_key=os.urandom(32))


@pytest.fixture
def keyring() -> KeyRing:
    return new_keyring()


@pytest.fixture
def phones(engine: Engine, keyring: KeyRing) -> PhoneIndex:
    return PhoneIndex(engine, keyring)


PHONE = "+86 138-0013-8000"
SAME_PHONE = "0086 (138) 0013 8000"


def test_api_tables_are_created_by_make_engine(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert {"phone_lookup", "sms_opt_out", "inbound_sms", "payment_notice", "sms_delivery"} <= names
    assert "webhook_signature" in names


def test_phone_lookup_by_any_spelling_of_the_number(phones: PhoneIndex) -> None:
    phones.register(PHONE, "LN-1")
    phones.register(SAME_PHONE, "LN-1")  # the same pair again: harmless
    phones.register(SAME_PHONE, "LN-2")
    assert phones.accounts_for("+8613800138000") == ["LN-1", "LN-2"]
    assert phones.accounts_for("+8613900139000") == []


def test_no_table_holds_a_phone_number_in_clear(engine: Engine, phones: PhoneIndex) -> None:
    phones.register(PHONE, "LN-1")
    phones.record_opt_out(PHONE, "LN-1")
    phones.record_inbound("webhook", "MSG-1", PHONE, "STOP")
    for table in ("phone_lookup", "sms_opt_out", "inbound_sms"):
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT * FROM {table}")).all()
        assert rows, table
        assert "13800138000" not in repr(rows), table


def test_phone_lookup_with_another_lookup_key_finds_nothing(engine: Engine, phones: PhoneIndex) -> None:
    phones.register(PHONE, "LN-1")
    phones.record_opt_out(PHONE, "LN-1")
    other = PhoneIndex(engine, new_keyring())
    assert other.accounts_for(PHONE) == []
    assert not other.is_opted_out(PHONE)
    [row] = phones.opt_outs()
    with pytest.raises(DecryptionError):
        other.open_phone(row.phone_encrypted)


def test_replace_moves_the_account_to_its_new_number_only(phones: PhoneIndex) -> None:
    phones.register(PHONE, "LN-1")
    phones.register(PHONE, "LN-2")
    phones.register("+8613700137000", "LN-1")
    phones.replace("LN-1", "+8613900139000")
    phones.replace("LN-1", "+86 139 0013 9000")  # the same number again: unchanged
    assert phones.accounts_for(PHONE) == ["LN-2"]
    assert phones.accounts_for("+8613700137000") == []
    assert phones.accounts_for("+8613900139000") == ["LN-1"]


def test_concurrent_registrations_and_replacements_make_one_row(phones: PhoneIndex) -> None:
    at_once(8, lambda: phones.register(PHONE, "LN-1"))
    assert phones.accounts_for(PHONE) == ["LN-1"]
    phones.register("+8613700137000", "LN-2")
    at_once(8, lambda: phones.replace("LN-2", "+8613900139000"))
    assert phones.accounts_for("+8613900139000") == ["LN-2"]
    assert phones.accounts_for("+8613700137000") == []


def test_index_account_replaces_the_accounts_numbers_and_says_whether_it_opted_out(
    engine: Engine, phones: PhoneIndex
) -> None:
    phones.register(PHONE, "LN-1")
    phones.register("+8613700137000", "LN-1")
    phones.register(PHONE, "LN-2")
    assert phones.index_account("LN-1", "+8613900139000") is False
    assert phones.accounts_for(PHONE) == ["LN-2"]
    assert phones.accounts_for("+8613700137000") == []
    assert phones.accounts_for("+8613900139000") == ["LN-1"]
    phones.record_opt_out("+86 139 0013 9000", "LN-1")
    # The same number again (any spelling): still indexed once, and now opted out.
    assert phones.index_account("LN-1", "0086 139-0013-9000") is True
    assert phones.accounts_for("+8613900139000") == ["LN-1"]
    # Another account on the opted-out number is told so too, and indexed beside the first.
    assert phones.index_account("LN-3", "+8613900139000") is True
    assert phones.accounts_for("+8613900139000") == ["LN-1", "LN-3"]
    assert phones.index_account("LN-2", PHONE) is False
    assert phones.is_opted_out("+8613900139000") and not phones.is_opted_out(PHONE)
    # Under another lookup key the opt-out is not found (its hash differs).
    assert PhoneIndex(engine, new_keyring()).index_account("LN-4", "+8613900139000") is False


def test_concurrent_index_account_makes_one_row(phones: PhoneIndex) -> None:
    phones.register("+8613700137000", "LN-1")
    phones.record_opt_out(PHONE, "LN-9")
    assert at_once(8, lambda: phones.index_account("LN-1", PHONE)) == [True] * 8
    assert phones.accounts_for(PHONE) == ["LN-1"]
    assert phones.accounts_for("+8613700137000") == []


def test_opt_out_once_per_number_and_readable_for_compliance(phones: PhoneIndex) -> None:
    assert not phones.is_opted_out(PHONE)
    at_once(6, lambda: phones.record_opt_out(PHONE, "LN-1"))
    phones.record_opt_out(SAME_PHONE, "LN-2")  # already opted out: the first record stays
    assert phones.is_opted_out("+8613800138000")
    [row] = phones.opt_outs()
    assert row.account_id == "LN-1"
    assert phones.open_phone(row.phone_encrypted) == "+8613800138000"


def test_inbound_message_is_stored_once_with_its_matches(phones: PhoneIndex) -> None:
    phones.register(PHONE, "LN-1")
    phones.register(PHONE, "LN-2")
    rows = at_once(6, lambda: phones.record_inbound("webhook", "MSG-1", SAME_PHONE, "我失业了"))
    assert len({row.id for row in rows}) == 1
    [stored] = phones.inbound_messages(from_phone=PHONE)
    assert (phones.open_body(stored), stored.matched_account_ids, stored.signalled_account_ids) == (
        "我失业了",
        ["LN-1", "LN-2"],
        [],
    )
    assert phones.open_phone(stored.phone_encrypted) == "+8613800138000"
    # The same id from another provider is another message; an unknown sender is kept unmatched.
    other = phones.record_inbound("twilio", "MSG-1", "+8613700137000", "hello")
    assert other.id != stored.id and other.matched_account_ids == []
    assert len(phones.inbound_messages()) == 2


REPLY = "I lost my job at the Qingshui mill, 我住院了"


def test_inbound_text_is_stored_only_encrypted(engine: Engine, phones: PhoneIndex) -> None:
    phones.record_inbound("webhook", "MSG-1", PHONE, REPLY)
    phones.record_inbound("webhook", "MSG-2", PHONE, "")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT body, body_encrypted FROM inbound_sms ORDER BY provider_message_id")
        ).all()
    assert [body for body, _ in rows] == ["", ""]
    assert all(sealed.startswith("k1:") for _, sealed in rows), rows
    for fragment in ("Qingshui", "lost my job", "住院"):
        assert fragment not in repr(rows)
    if engine.dialect.name == "sqlite":  # nor anywhere in the file, its WAL or shared memory
        database = Path(str(engine.url.database))
        for path in database.parent.glob(database.name + "*"):
            content = path.read_bytes()
            assert b"Qingshui" not in content and "住院".encode() not in content, path.name
    first, empty = phones.inbound_messages(from_phone=SAME_PHONE)
    assert (phones.open_body(first), phones.open_body(empty)) == (REPLY, "")
    # Sealed anew each time: the same text twice is two different ciphertexts.
    again = phones.record_inbound("webhook", "MSG-3", PHONE, REPLY)
    assert again.body_encrypted != first.body_encrypted and phones.open_body(again) == REPLY


def test_inbound_text_does_not_open_with_a_wrong_or_unknown_key(engine: Engine, phones: PhoneIndex) -> None:
    phones.record_inbound("webhook", "MSG-1", PHONE, REPLY)
    [stored] = phones.inbound_messages()
    wrong_key = PhoneIndex(engine, new_keyring())  # the same key id "k1", another key
    with pytest.raises(DecryptionError, match="does not open"):
        wrong_key.open_body(stored)
    retired = PhoneIndex(
        engine, KeyRing(keys={"k2": os.urandom(32)}, current_id="k2", hash_key=os.urandom(32))
    )
    with pytest.raises(DecryptionError, match="unknown encryption key id 'k1'"):
        retired.open_body(stored)
    assert phones.open_body(stored) == REPLY


def create_legacy_inbound_table(engine: Engine) -> Table:
    """``inbound_sms`` as the version before texts were encrypted created it: no ``body_encrypted``,
    the text in clear in ``body``; and no ``alembic_version``, as before migrations."""
    current: Table = InboundMessage.__table__  # type: ignore[attr-defined]
    current.drop(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE alembic_version")
    legacy = Table(
        "inbound_sms",
        MetaData(),
        *(
            Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in current.columns
            if c.name != "body_encrypted"
        ),
        UniqueConstraint("provider", "provider_message_id"),
    )
    legacy.create(engine)
    return legacy


def legacy_row(message_id: str, body: str, digest: str, sealed_phone: str) -> dict[str, Any]:
    return {
        "provider": "webhook",
        "provider_message_id": message_id,
        "phone_hash": digest,
        "phone_encrypted": sealed_phone,
        "body": body,
        "received_at": AT,
        "matched_account_ids": ["LN-1"],
        "signalled_account_ids": ["LN-1"],
        "routed_at": AT,
    }


def test_inbound_texts_of_an_older_database_still_read(engine: Engine, keyring: KeyRing) -> None:
    legacy = create_legacy_inbound_table(engine)
    phones = PhoneIndex(engine, keyring)
    digest, sealed_phone = phones.phone_hash(PHONE), keyring.seal_text("+8613800138000")
    # Written in clear by the older version; one reply happens to look like a sealed value.
    looks_sealed = keyring.seal_text("something else")
    with engine.begin() as connection:
        connection.execute(
            legacy.insert(),
            [
                legacy_row("OLD-1", "我失业了", digest, sealed_phone),
                legacy_row("OLD-2", looks_sealed, digest, sealed_phone),
            ],
        )
    assert "body_encrypted" not in {c["name"] for c in inspect(engine).get_columns("inbound_sms")}

    at_once(4, lambda: upgrade(engine))  # processes starting together add the column once
    assert "body_encrypted" in {c["name"] for c in inspect(engine).get_columns("inbound_sms")}

    old, old_lookalike = phones.inbound_messages(from_phone=PHONE)
    assert (old.body_encrypted, phones.open_body(old)) == (None, "我失业了")
    assert phones.open_body(old_lookalike) == looks_sealed  # the column decides, not the value's look
    assert phones.open_phone(old.phone_encrypted) == "+8613800138000"
    # A replay of an old message is still recognised as routed; a new one is stored encrypted.
    assert phones.record_inbound("webhook", "OLD-1", PHONE, "我失业了").routed_at is not None
    new = phones.record_inbound("webhook", "NEW-1", PHONE, REPLY)
    assert new.legacy_body == "" and new.body_encrypted is not None and phones.open_body(new) == REPLY
    # A process of the older version, still running beside the new one, inserts without the column.
    with engine.begin() as connection:
        connection.execute(legacy.insert(), [legacy_row("OLD-3", "still plain", digest, sealed_phone)])
    assert [phones.open_body(m) for m in phones.inbound_messages()] == [
        "我失业了",
        looks_sealed,
        REPLY,
        "still plain",
    ]


def test_inbound_message_is_claimed_by_one_request_and_signalled_once_per_account(phones: PhoneIndex) -> None:
    message = phones.record_inbound("webhook", "MSG-1", PHONE, "HELP")
    assert message.id is not None
    message_id = message.id
    claims = at_once(8, lambda: phones.claim_inbound(message_id))
    assert claims.count(True) == 1
    phones.release_inbound(message_id)  # the request failed: a retry may take it again
    assert phones.claim_inbound(message_id)
    phones.mark_signalled(message_id, "LN-1")
    phones.mark_signalled(message_id, "LN-1")
    phones.mark_signalled(message_id, "LN-2")
    phones.mark_routed(message_id)
    assert not phones.claim_inbound(message_id)
    [stored] = phones.inbound_messages()
    assert stored.signalled_account_ids == ["LN-1", "LN-2"]
    assert stored.routed_at is not None and stored.claimed_until is None


def test_payment_is_recorded_once_per_reference_with_its_exact_amount(phones: PhoneIndex) -> None:
    amount = Decimal("12345678901234567.89")
    rows = at_once(6, lambda: phones.record_payment("PAY-1", "LN-1", amount))
    assert {row.amount for row in rows} == {"12345678901234567.89"}
    again = phones.record_payment("PAY-1", "LN-2", Decimal("1.00"))  # a replay keeps the first
    assert (again.account_id, Decimal(again.amount)) == ("LN-1", amount)
    assert phones.payment("PAY-2") is None


def test_payment_is_claimed_by_one_request_and_signalled_once(phones: PhoneIndex) -> None:
    phones.record_payment("PAY-1", "LN-1", Decimal("500.00"))
    assert at_once(8, lambda: phones.claim_payment("PAY-1")).count(True) == 1
    phones.release_payment("PAY-1")
    assert phones.claim_payment("PAY-1")
    phones.mark_payment_signalled("PAY-1")
    assert not phones.claim_payment("PAY-1")
    stored = phones.payment("PAY-1")
    assert stored is not None and stored.signalled_at is not None and stored.claimed_until is None


def test_delivery_status_only_moves_forward(phones: PhoneIndex) -> None:
    assert phones.advance_delivery("SM-1", "LN-1", "queued").advanced
    assert phones.advance_delivery("SM-1", "LN-1", "delivered").advanced
    late = phones.advance_delivery("SM-1", "LN-1", "sent")
    assert (late.advanced, late.current.status) == (False, "delivered")
    assert not phones.advance_delivery("SM-1", "LN-1", "failed", permanent=True).advanced
    # Concurrent receipts for a new message: exactly one moves it to its final state.
    results = at_once(8, lambda: phones.advance_delivery("SM-2", "LN-1", "undelivered", permanent=True))
    assert [result.advanced for result in results].count(True) == 1
    current = phones.delivery("SM-2")
    assert current is not None and (current.status, current.permanent) == ("undelivered", True)
    phones.mark_undeliverable_signalled("SM-2")
    signalled = phones.delivery("SM-2")
    assert signalled is not None and signalled.undeliverable_signalled_at is not None


def test_webhook_signature_is_accepted_once(phones: PhoneIndex) -> None:
    expires = int(time.time()) + 300
    assert at_once(8, lambda: phones.claim_signature("a" * 64, expires)).count(True) == 1
    phones.release_signature("a" * 64)  # the request failed: the sender's retry is no replay
    assert phones.claim_signature("a" * 64, expires)
    assert not phones.claim_signature("a" * 64, expires)
    # An expired entry is deleted on the way: by then the signature's timestamp refuses it anyway.
    assert phones.claim_signature("b" * 64, int(time.time()) - 1)
    assert phones.claim_signature("b" * 64, expires)


def test_concurrent_appends_of_one_event_key_all_succeed_and_write_once(store: AuditStore) -> None:
    """Writers racing on one event key: none fails, exactly one row is written."""
    barrier = threading.Barrier(6)

    def append() -> int:
        entry = AuditEntry(
            event_key="race/ev-1", account_id="LN-RACE", at=datetime.now(UTC), kind="sms_sent", detail="x"
        )
        barrier.wait()
        return store.append([entry])

    for _ in range(10):
        with ThreadPoolExecutor(6) as pool:
            added = list(pool.map(lambda _: append(), range(6)))
        assert sum(added) <= 1
    assert len(store.audit_for("LN-RACE")) == 1
