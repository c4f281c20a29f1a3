"""The application database's migrations, on SQLite and PostgreSQL: an empty database, databases of
the releases before migrations with rows in them (their schemas in ``tests/data``), processes and
threads upgrading at once, a database a newer version migrated, and ``kindly db``."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, MetaData, func, inspect, select, text
from typer.testing import CliRunner

from kindly.keyring import KeyRing
from kindly.programs.cli import app
from kindly.store import (
    AuditStore,
    LinkTarget,
    OutboxEntry,
    PhoneIndex,
    ProviderAlarms,
    SelfServiceLinks,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from kindly.store.phones import normalise_phone
from tests.databases import at_once, database_url, upgrade_in_process  # noqa: F401
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

DATA = Path(__file__).parent / "data"
AT = datetime(2026, 3, 2, 9, 30, 15, tzinfo=UTC)
PHONE = "+86 138-0013-8000"
REPLY = "我失业了"
KEYRING = KeyRing(keys={"k1": b"k" * 32}, current_id="k1", hash_key=b"h" * 32)
MANAGED = {table.name for table in migrate.TABLES}
DERIVED = {"account_outcomes": 0, "analytics_watermark": 0}
"""The outcome analytics' derived tables (0003), empty until the first report builds them."""
CONSOLE = {"console_user": 0, "call_task": 0, "specialist_case": 0, "case_note": 0, "console_session": 0}
"""The staff console's tables (0004, 0005), empty until the console is used."""
LINKS = {"self_service_link": 0}
"""The reminders' self-service links (0006), empty until a reminder is sent."""
ALARMS = {"provider_alarm": 0}
"""The provider alarms (0007), empty until a provider refuses the lender's account."""
COMPLAINTS = {"complaint": 0}
"""The complaints (0008), empty until a complaint opens."""
OUTCOME_COMPLAINT_COLUMNS = {
    ("add_column", "complaints_opened"),
    ("add_column", "complaints_acknowledged_late"),
    ("add_column", "complaints_resolved_late"),
}
"""What autogenerate reports for an ``account_outcomes`` from before complaints were counted (0009)."""


def console_tables_added() -> set[tuple[str, str | None]]:
    """What autogenerate reports for a database without the console's queues and sessions (0005): the
    tables, their indexes, and the audit log's ``actor``."""
    added: set[tuple[str, str | None]] = {("add_column", "actor")}
    for table in migrate.TABLES:
        if table.name in CONSOLE and table.name != "console_user":
            added |= {("add_table", table.name)} | {("add_index", index.name) for index in table.indexes}
    return added


def links_table_added() -> set[tuple[str, str | None]]:
    """What autogenerate reports for a database without the self-service links (0006)."""
    [table] = [table for table in migrate.TABLES if table.name in LINKS]
    return {("add_table", table.name)} | {("add_index", index.name) for index in table.indexes}


def alarms_table_added() -> set[tuple[str, str | None]]:
    """What autogenerate reports for a database without the provider alarms (0007)."""
    [table] = [table for table in migrate.TABLES if table.name in ALARMS]
    return {("add_table", table.name)} | {("add_index", index.name) for index in table.indexes}


def complaints_table_added() -> set[tuple[str, str | None]]:
    """What autogenerate reports for a database without the complaints (0008)."""
    [table] = [table for table in migrate.TABLES if table.name in COMPLAINTS]
    return {("add_table", table.name)} | {("add_index", index.name) for index in table.indexes}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    """An engine on the empty database that does not migrate it."""
    engine = make_engine(database_url, upgrade=False)
    yield engine
    engine.dispose()


def load_schema(engine: Engine, release: str) -> None:
    """Create the tables a release made (``tests/data/<release>.<dialect>.sql``)."""
    script = (DATA / f"{release}.{engine.dialect.name}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
    with engine.begin() as connection:
        for statement in body.split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)


def insert_release_rows(engine: Engine) -> None:
    """One row in every table the database has, written as its release wrote them."""
    metadata = MetaData()
    metadata.reflect(engine)
    tables = metadata.tables
    digest = KEYRING.lookup_hash(normalise_phone(PHONE))
    sealed_phone = KEYRING.seal_text(normalise_phone(PHONE))
    encrypted = "body_encrypted" in tables["inbound_sms"].c
    rows: dict[str, dict[str, Any]] = {
        "audit_log": {
            "event_key": "old/ev-1",
            "account_id": "LN-OLD",
            "at": AT,
            "kind": "sms_sent",
            "detail": "sent before the upgrade",
            "recorded_at": AT,
        },
        "outbox": {
            "idempotency_key": "old/tp-1",
            "account_id": "LN-OLD",
            "touchpoint": 1,
            "channel": "sms",
            "template": "first_overdue",
            "status": "sending",
            "provider_message_id": None,
            "attempts": 1,
            "created_at": AT,
            "completed_at": None,
        },
        "phone_lookup": {"phone_hash": digest, "account_id": "LN-OLD", "registered_at": AT},
        "sms_opt_out": {
            "phone_hash": digest,
            "phone_encrypted": sealed_phone,
            "account_id": "LN-OLD",
            "opted_out_at": AT,
        },
        "inbound_sms": {
            "provider": "webhook",
            "provider_message_id": "OLD-1",
            "phone_hash": digest,
            "phone_encrypted": sealed_phone,
            "body": "" if encrypted else REPLY,
            **({"body_encrypted": KEYRING.seal_text(REPLY)} if encrypted else {}),
            "received_at": AT,
            "matched_account_ids": ["LN-OLD"],
            "signalled_account_ids": ["LN-OLD"],
            "routed_at": AT,
        },
        "payment_notice": {
            "reference": "PAY-OLD",
            "account_id": "LN-OLD",
            "amount": "12345678901234567.89",
            "received_at": AT,
        },
        "sms_delivery": {
            "provider_message_id": "SM-OLD",
            "account_id": "LN-OLD",
            "status": "delivered",
            "rank": 3,
            "permanent": False,
            "updated_at": AT,
        },
        "webhook_signature": {"digest": "a" * 64, "expires_at": 2_000_000_000},
        "worker_policy": {
            "fingerprint": "0123456789abcdef",
            "policies": {"plain": {"holiday_calendar": None}},
            "first_registered_at": AT,
            "last_registered_at": AT,
        },
    }
    with engine.begin() as connection:
        for name, table in tables.items():
            connection.execute(table.insert(), rows[name])


def row_counts(engine: Engine) -> dict[str, int]:
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in metadata.tables.items()
            if name != "alembic_version"
        }


def schema_differences(engine: Engine) -> list[Any]:
    """What autogenerate would change to make the database what the models define: nothing, when
    the migrations and the models agree."""
    options = migrate.comparison_options()
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_object": options["include_object"]},
        )
        return list(compare_metadata(context, options["target_metadata"]))


def version_rows(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def assert_release_rows_read(engine: Engine, *, encrypted: bool) -> None:
    """The rows ``insert_release_rows`` wrote, read through the stores."""
    audit, phones = AuditStore(engine), PhoneIndex(engine, KEYRING)
    assert [entry.event_key for entry in audit.audit_for("LN-OLD")] == ["old/ev-1"]
    [sending] = audit.outbox_for("LN-OLD")
    assert (sending.status, sending.detail, sending.attempts) == ("sending", None, 1)
    assert phones.accounts_for(PHONE) == ["LN-OLD"]
    assert phones.is_opted_out(PHONE)
    [message] = phones.inbound_messages(PHONE)
    assert (message.body_encrypted is not None, phones.open_body(message)) == (encrypted, REPLY)
    payment = phones.payment("PAY-OLD")
    assert payment is not None and payment.amount == "12345678901234567.89"
    delivery = phones.delivery("SM-OLD")
    assert delivery is not None and delivery.status == "delivered"
    assert not phones.claim_signature("a" * 64, 2_000_000_000)  # still used
    # The columns added since work on the old rows: a cancelled send keeps its reason, a new reply
    # is stored encrypted.
    cancelled = OutboxEntry(idempotency_key="old/tp-1", account_id="LN-OLD", touchpoint=1, channel="sms")
    assert audit.cancel(cancelled, "repaid") == "unknown"
    [row] = audit.outbox_for("LN-OLD")
    assert (row.status, row.detail) == ("cancelled", "repaid; an attempt's answer was lost")
    new = phones.record_inbound("webhook", "NEW-1", PHONE, "hello")
    assert new.body_encrypted is not None and phones.open_body(new) == "hello"


# --- an empty database -----------------------------------------------------------------------------


def test_an_empty_database_is_migrated_to_what_the_models_define(engine: Engine) -> None:
    assert current_revision(engine) is None and inspect(engine).get_table_names() == []
    assert migrate.upgrade(engine) == head_revision() == "0009"
    assert set(inspect(engine).get_table_names()) == {*MANAGED, "alembic_version"}
    assert schema_differences(engine) == []
    assert version_rows(engine) == [head_revision()]
    indexes = {index["name"] for index in inspect(engine).get_indexes("audit_log")}
    assert "ix_audit_log_at" in indexes
    claimed = AuditStore(engine).claim(
        OutboxEntry(idempotency_key="k", account_id="A", touchpoint=1, channel="sms")
    )
    assert (claimed.status, claimed.attempts) == ("sending", 1)
    # Again: nothing to do, nothing changes.
    assert migrate.upgrade(engine) == head_revision()
    assert version_rows(engine) == [head_revision()]


def test_make_engine_migrates_unless_told_not_to(database_url: str) -> None:  # noqa: F811
    untouched = make_engine(database_url, upgrade=False)
    assert inspect(untouched).get_table_names() == []
    untouched.dispose()
    engine = make_engine(database_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_threads_upgrading_an_empty_database_at_once_migrate_it_once(engine: Engine) -> None:
    engines = [make_engine(engine.url.render_as_string(hide_password=False), upgrade=False) for _ in range(6)]
    try:
        results = at_once(6, lambda: migrate.upgrade(engines.pop()))
    finally:
        for each in engines:
            each.dispose()
    assert results == [head_revision()] * 6
    assert version_rows(engine) == [head_revision()]
    assert schema_differences(engine) == []


def test_an_upgrade_that_waited_for_the_lock_finds_the_work_done(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that read "not migrated" and then waited for the schema lock while another migrated
    must read the revision again under the lock, not migrate a second time."""
    waiter = make_engine(engine.url.render_as_string(hide_password=False), upgrade=False)
    lock, migrate_now = migrate.lock_schema, command.upgrade
    at_lock = threading.Event()
    migrations_by_waiter: list[str] = []

    def lock_schema(connection: Connection) -> None:
        at_lock.set()  # the waiter read the revision (none) and now takes the lock
        lock(connection)

    monkeypatch.setattr(migrate, "lock_schema", lock_schema)
    monkeypatch.setattr(command, "upgrade", lambda *args, **kwargs: migrations_by_waiter.append("upgrade"))
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with engine.begin() as connection:
            lock(connection)
            waiting = pool.submit(migrate.upgrade, waiter)
            assert at_lock.wait(timeout=30)
            migrate_now(migrate.alembic_config(connection), "head")
        assert waiting.result(timeout=60) == head_revision()
    finally:
        pool.shutdown()
        waiter.dispose()
    assert migrations_by_waiter == []
    assert version_rows(engine) == [head_revision()]


def test_a_database_at_0004_gets_the_console_queues_and_keeps_its_audit_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        command.upgrade(migrate.alembic_config(connection), "0004")
        connection.execute(
            text(
                "INSERT INTO audit_log (event_key, account_id, at, kind, detail, recorded_at) "
                "VALUES ('old/ev-1', 'LN-OLD', :at, 'sms_sent', 'sent before the upgrade', :at)"
            ),
            {"at": AT},
        )
    assert migrate.upgrade(engine) == head_revision() == "0009"
    assert schema_differences(engine) == []
    [entry] = AuditStore(engine).audit_for("LN-OLD")
    assert (entry.event_key, entry.actor) == ("old/ev-1", None)
    for table in ("call_task", "specialist_case"):
        unique = {index["name"] for index in inspect(engine).get_indexes(table) if index["unique"]}
        assert f"ux_{table}_open_account" in unique


def test_a_database_at_0005_gets_the_self_service_links_and_keeps_its_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        command.upgrade(migrate.alembic_config(connection), "0005")
        connection.execute(
            text(
                "INSERT INTO outbox (idempotency_key, account_id, touchpoint, channel, status, attempts, "
                "created_at) VALUES ('old/tp-1', 'LN-OLD', 1, 'sms', 'sent', 1, :at)"
            ),
            {"at": AT},
        )
    assert {(change[0], getattr(change[-1], "name", None)) for change in schema_differences(engine)} == (
        links_table_added() | alarms_table_added() | complaints_table_added() | OUTCOME_COMPLAINT_COLUMNS
    )
    assert migrate.upgrade(engine) == head_revision() == "0009"
    assert schema_differences(engine) == []
    assert [row.idempotency_key for row in AuditStore(engine).outbox_for("LN-OLD")] == ["old/tp-1"]
    unique = {index["name"] for index in inspect(engine).get_indexes("self_service_link") if index["unique"]}
    assert unique == {"ix_self_service_link_idempotency_key"}
    links = SelfServiceLinks(engine, KEYRING)
    token = links.issue("new/tp-1", "LN-OLD", 2, AT, timedelta(days=30))
    assert links.resolve(token, AT) == LinkTarget("LN-OLD", 2, AT + timedelta(days=30))


def test_a_database_at_0006_gets_the_provider_alarms_and_keeps_its_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        command.upgrade(migrate.alembic_config(connection), "0006")
        connection.execute(
            text(
                "INSERT INTO outbox (idempotency_key, account_id, touchpoint, channel, status, attempts, "
                "created_at) VALUES ('old/tp-1', 'LN-OLD', 1, 'sms', 'pending', 1, :at)"
            ),
            {"at": AT},
        )
    assert {(change[0], getattr(change[-1], "name", None)) for change in schema_differences(engine)} == (
        alarms_table_added() | complaints_table_added() | OUTCOME_COMPLAINT_COLUMNS
    )
    assert migrate.upgrade(engine) == head_revision() == "0009"
    assert schema_differences(engine) == []
    assert [row.idempotency_key for row in AuditStore(engine).outbox_for("LN-OLD")] == ["old/tp-1"]
    alarms = ProviderAlarms(engine)
    alarm, opened = alarms.raise_alarm("aliyun", "isv.AMOUNT_NOT_ENOUGH", "balance", AT)
    assert opened and alarms.open_alarm("aliyun") == alarm


def test_a_database_at_0007_gets_the_complaints_and_keeps_its_outcome_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        command.upgrade(migrate.alembic_config(connection), "0007")
        connection.execute(
            text(
                "INSERT INTO account_outcomes (account_id, experiments, collected, repayments, sms_sent, "
                "templates, call_tasks, replies, opted_out, hardship, dispute, promises_made, promises_kept, "
                "promises_broken, escalated_specialist, last_audit_id) "
                "VALUES ('LN-OLD', '{}', '0', 0, 3, '{}', 0, 0, false, false, false, 0, 0, 0, false, 9)"
            )
        )
    assert {(change[0], getattr(change[-1], "name", None)) for change in schema_differences(engine)} == (
        complaints_table_added() | OUTCOME_COMPLAINT_COLUMNS
    )
    assert migrate.upgrade(engine) == head_revision() == "0009"
    assert schema_differences(engine) == []
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT sms_sent, complaints_opened, complaints_resolved_late FROM account_outcomes")
        ).one()
    assert tuple(row) == (3, 0, 0)
    unique = {index["name"] for index in inspect(engine).get_indexes("complaint") if index["unique"]}
    assert unique == {"ux_complaint_account_number"}
    # And back: the complaints' table and columns go, the outcome row stays.
    with engine.begin() as connection:
        command.downgrade(migrate.alembic_config(connection), "0007")
    assert "complaint" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT account_id FROM account_outcomes")).scalars().all() == [
            "LN-OLD"
        ]


# --- databases of the releases before migrations -----------------------------------------------------


def test_the_last_release_before_migrations_is_adopted_with_its_rows(engine: Engine) -> None:
    load_schema(engine, "schema_before_migrations")
    insert_release_rows(engine)
    before = row_counts(engine)
    assert "worker_policy" in before and current_revision(engine) is None

    assert migrate.upgrade(engine) == head_revision()

    after = row_counts(engine)
    kept = {name: count for name, count in before.items() if name != "worker_policy"}
    added_since = {name: 0 for name in set(after) - set(before)}
    assert (
        added_since == {"experiments": 0, **CONSOLE, **DERIVED, **LINKS, **ALARMS, **COMPLAINTS}
        and after == kept | added_since
    )
    assert schema_differences(engine) == []
    assert version_rows(engine) == [head_revision()]
    assert_release_rows_read(engine, encrypted=True)


def test_an_older_release_gets_the_columns_and_index_added_since(engine: Engine) -> None:
    """Before ``outbox.detail``, ``inbound_sms.body_encrypted`` and the audit log's index on ``at``:
    processes starting together add them once, and every row stays."""
    load_schema(engine, "schema_older_release")
    insert_release_rows(engine)
    before = row_counts(engine)
    assert {(change[0], getattr(change[-1], "name", None)) for change in schema_differences(engine)} == {
        ("add_column", "detail"),
        ("add_column", "body_encrypted"),
        ("add_index", "ix_audit_log_at"),
        ("add_table", "experiments"),
        ("add_table", "account_outcomes"),
        ("add_table", "console_user"),
        ("add_table", "analytics_watermark"),
        ("add_index", "ix_audit_log_account_id_at"),
        *console_tables_added(),
        *links_table_added(),
        *alarms_table_added(),
        *complaints_table_added(),
    }
    url = engine.url.render_as_string(hide_password=False)

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    processes = [context.Process(target=upgrade_in_process, args=(url, barrier, results)) for _ in range(3)]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=180) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=60)
    assert outcomes == [head_revision()] * 3
    assert [process.exitcode for process in processes] == [0, 0, 0]

    assert row_counts(engine) == before | {
        "experiments": 0,
        **CONSOLE,
        **DERIVED,
        **LINKS,
        **ALARMS,
        **COMPLAINTS,
    }
    assert version_rows(engine) == [head_revision()]
    assert schema_differences(engine) == []
    assert "ix_audit_log_at" in {index["name"] for index in inspect(engine).get_indexes("audit_log")}
    assert_release_rows_read(engine, encrypted=False)


def test_a_database_a_newer_version_migrated_is_left_alone(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with caplog.at_level("WARNING", logger="kindly.store.migrate"):
        assert migrate.upgrade(engine) == "9999"
    [warning] = [record.getMessage() for record in caplog.records if record.name == "kindly.store.migrate"]
    assert "9999" in warning and "newer version" in warning
    assert version_rows(engine) == ["9999"]
    assert AuditStore(engine).audit_for("LN-1") == []  # and this version still works on it


# --- kindly db ---------------------------------------------------------------------------------------


def kindly_db(url: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["db", *args], env={"COLLECTIONS_DATABASE_URL": url})


def test_kindly_db_upgrade_migrates_and_says_from_which_revision(database_url: str) -> None:  # noqa: F811
    current = kindly_db(database_url, "current")
    assert current.exit_code == 0, current.output
    assert "revision: none" in current.output

    upgraded = kindly_db(database_url, "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert "revision before: none" in upgraded.output
    assert f"revision after:  {head_revision()} (the newest)" in upgraded.output

    again = kindly_db(database_url, "upgrade")
    assert again.exit_code == 0, again.output
    assert f"revision before: {head_revision()} (the newest)" in again.output
    current = kindly_db(database_url, "current")
    assert f"revision: {head_revision()} (the newest)" in current.output
    engine = make_engine(database_url, upgrade=False)
    assert version_rows(engine) == [head_revision()]
    engine.dispose()


def test_kindly_db_upgrade_as_installed(tmp_path: Path) -> None:
    """The ``kindly`` script itself, in a process of its own."""
    url = f"sqlite:///{tmp_path / 'kindly.db'}"
    kindly = Path(sys.executable).parent / "kindly"
    upgraded = subprocess.run(
        [str(kindly), "db", "upgrade"],
        env={**os.environ, "COLLECTIONS_DATABASE_URL": url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"revision after:  {head_revision()}" in upgraded.stdout
    engine = make_engine(url, upgrade=False)
    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("not a database url", 2),
        ("nosuchdatabase://host/kindly", 2),
        ("postgresql://kindly@127.0.0.1:1/kindly", 1),  # nothing listens there
    ],
)
def test_kindly_db_with_an_unusable_url_names_the_setting(url: str, code: int) -> None:
    for command_name in ("upgrade", "current"):
        result = kindly_db(url, command_name)
        assert result.exit_code == code, result.output
        assert "COLLECTIONS_DATABASE_URL" in result.output
        assert "Traceback" not in result.output
