"""The application database's schema: Alembic migrations (``kindly/store/migrations``), configured here
in code, so that nothing but the installed package is needed to upgrade a database.

``upgrade(engine)`` brings a database to the newest revision; ``make_engine`` calls it, so the worker,
the API and the CLI upgrade their database as they start. Several processes may start at once
(scaled workers beside the API): the upgrade runs under a schema lock (an advisory lock on
PostgreSQL, the write lock on SQLite), and a process that waited for the lock reads the revision
again and finds the work done.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Literal

from alembic import command
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, Table, inspect, text
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from kindly.store.alarms import ProviderAlarm
from kindly.store.audit import AuditEntry
from kindly.store.call_tasks import CallTask
from kindly.store.cases import CaseNote, SpecialistCase
from kindly.store.complaints import ComplaintRow
from kindly.store.console_sessions import ConsoleSession
from kindly.store.experiments import ExperimentRecord
from kindly.store.inbound import InboundMessage, PaymentNotification
from kindly.store.outbox import OutboxEntry
from kindly.store.outcomes import AccountOutcomeRecord, OutcomeWatermark
from kindly.store.phones import OptOut, PhoneIndexEntry
from kindly.store.receipts import DeliveryStatus
from kindly.store.self_service_links import SelfServiceLink
from kindly.store.signatures import SeenSignature
from kindly.store.users import UserRecord

log = logging.getLogger(__name__)

SCRIPT_LOCATION = "kindly.store:migrations"


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


TABLES: tuple[Table, ...] = tuple(
    _table(model)
    for model in (
        AuditEntry,
        OutboxEntry,
        PhoneIndexEntry,
        OptOut,
        InboundMessage,
        PaymentNotification,
        DeliveryStatus,
        SeenSignature,
        ExperimentRecord,
        AccountOutcomeRecord,
        OutcomeWatermark,
        UserRecord,
        CallTask,
        SpecialistCase,
        CaseNote,
        ConsoleSession,
        SelfServiceLink,
        ProviderAlarm,
        ComplaintRow,
    )
)
"""Every table the migrations manage, as the models define them now."""

LEGACY_TABLES = ("phone_index", "opt_out", "inbound_message", "payment_notification")
"""Tables of the releases before phone numbers were protected, which hold numbers in clear. They are
neither read nor dropped (their opt-outs are not carried over: somebody must decide about them)."""

_SCHEMA_LOCK_KEY = 0x6B696E646C79  # "kindly"
_MIGRATING = threading.Lock()
"""Alembic keeps the running migration's context in module globals (``alembic.context``, ``op``): one
migration at a time in a process, whichever database it is for. Taken before the schema lock."""


def target_metadata() -> MetaData:
    """The managed tables alone, for autogenerate to compare a database with."""
    metadata = MetaData()
    for table in TABLES:
        table.to_metadata(metadata)
    return metadata


def comparison_options() -> dict[str, Any]:
    """How autogenerate compares a database with ``target_metadata()`` (``context.configure``'s
    options): column types too, and not the database's tables that no model defines."""
    return {
        "target_metadata": target_metadata(),
        "include_object": _include_object,
        "render_item": _render_item,
        "compare_type": True,
    }


def _include_object(item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Leave out a table of the database that no model defines (the legacy tables)."""
    return not (type_ == "table" and reflected and compare_to is None)


def _render_item(type_: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """sqlmodel's column types written as the plain SQLAlchemy types they create, so that a revision
    does not depend on sqlmodel."""
    if type_ == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    if type_ == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Config:
    """Alembic's configuration, without an ini file: migrations run on ``connection`` (in its
    transaction), or on a connection to ``url`` (``command.revision(alembic_config(url=...), ...)``)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    # Revision files are modules of the package: their names must be identifiers.
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this version knows."""
    head = _scripts().get_current_head()
    assert head is not None, "kindly/store/migrations has no revision"
    return head


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for an empty database or one from before migrations."""
    with engine.connect() as connection:
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def lock_schema(connection: Connection) -> None:
    """Hold the schema lock until the transaction ends, so one process at a time changes the schema:
    an advisory lock on PostgreSQL, the write lock on SQLite (the transaction must not have begun)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: Engine) -> str | None:
    """Migrate the database to the newest revision; returns its revision afterwards.

    A database at the newest revision costs a query (and one more for the legacy tables). Otherwise
    the migrations run in one transaction under the schema lock, after reading the revision again (a
    process that waited for the lock finds the work done by the one that held it). A database at a
    revision this version does not know was migrated by a newer version: it is left as it is
    (migrations only add, so this version keeps working beside the newer one), with a warning.
    """
    revision = current_revision(engine)
    if _behind(engine, revision):
        with _MIGRATING, engine.begin() as connection:
            lock_schema(connection)
            revision = _revision(connection)
            if _behind(engine, revision):
                command.upgrade(alembic_config(connection), "head")
                log.info(
                    "migrated database %s from %s to %s",
                    _name(engine),
                    revision or "no revision",
                    head_revision(),
                )
                revision = head_revision()
    _warn_about_legacy_tables(engine)
    return revision


def _behind(engine: Engine, revision: str | None) -> bool:
    """Whether a database at ``revision`` needs migrating: not at the newest revision, and not at one
    this version does not know (a newer version's: warned about, and left alone)."""
    if revision == head_revision():
        return False
    if revision is None or revision in _known_revisions():
        return True
    log.warning(
        "database %s is at revision %s, which this version of Kindly does not know (it knows up to %s): "
        "a newer version migrated it; not migrating",
        _name(engine),
        revision,
        head_revision(),
    )
    return False


def _warn_about_legacy_tables(engine: Engine) -> None:
    legacy = sorted(set(LEGACY_TABLES) & set(inspect(engine).get_table_names()))
    if legacy:
        log.warning(
            "database %s has tables from an older Kindly that are no longer used: %s. They may hold "
            "phone numbers in clear, and opt-outs in them are not carried over. Drop them (or delete a "
            "development database); this version stores numbers as a keyed hash and encrypted.",
            _name(engine),
            ", ".join(legacy),
        )


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
