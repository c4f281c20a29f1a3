"""1.0 baseline: every table of the application database.

On an empty database it creates them. A database of the releases before migrations (its tables made
by ``create_all``, no ``alembic_version``) is brought to the same schema without losing a row: a
missing table is created, a table that exists gets the columns and indexes added since its first
release (``outbox.detail``, ``inbound_sms.body_encrypted``, the audit log's index on ``at``; all
nullable columns, so adding them to a table with rows is instant). The table of worker policies,
which this release no longer has, is dropped. The legacy tables that hold phone numbers in clear
(``kindly.store.migrate.LEGACY_TABLES``) are left for an operator to decide about.

The tables are written out here as they are at this revision, not taken from the models, which will
change in later revisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED_TABLES = ("worker_policy",)


def _tables() -> list[sa.Table]:
    metadata = sa.MetaData()
    time = sa.DateTime(timezone=True)
    return [
        sa.Table(
            "audit_log",
            metadata,
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("event_key", sa.String(), nullable=False),
            sa.Column("account_id", sa.String(), nullable=False),
            sa.Column("at", time, nullable=False),
            sa.Column("kind", sa.String(), nullable=False),
            sa.Column("detail", sa.String(), nullable=False),
            sa.Column("touchpoint", sa.Integer(), nullable=True),
            sa.Column("template", sa.String(), nullable=True),
            sa.Column("provider", sa.String(), nullable=True),
            sa.Column("provider_message_id", sa.String(), nullable=True),
            sa.Column("outcome", sa.String(), nullable=True),
            sa.Column("recorded_at", time, nullable=False),
            sa.Index("ix_audit_log_event_key", "event_key", unique=True),
            sa.Index("ix_audit_log_account_id", "account_id"),
            sa.Index("ix_audit_log_at", "at"),
            sa.Index("ix_audit_log_kind", "kind"),
        ),
        sa.Table(
            "outbox",
            metadata,
            sa.Column("idempotency_key", sa.String(), primary_key=True),
            sa.Column("account_id", sa.String(), nullable=False),
            sa.Column("touchpoint", sa.Integer(), nullable=False),
            sa.Column("channel", sa.String(), nullable=False),
            sa.Column("template", sa.String(), nullable=True),
            sa.Column("status", sa.String(), nullable=False),
            sa.Column("detail", sa.String(), nullable=True),
            sa.Column("provider_message_id", sa.String(), nullable=True),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("created_at", time, nullable=False),
            sa.Column("completed_at", time, nullable=True),
            sa.Index("ix_outbox_account_id", "account_id"),
        ),
        sa.Table(
            "phone_lookup",
            metadata,
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("phone_hash", sa.String(length=64), nullable=False),
            sa.Column("account_id", sa.String(), nullable=False),
            sa.Column("registered_at", time, nullable=False),
            sa.UniqueConstraint("phone_hash", "account_id"),
            sa.Index("ix_phone_lookup_account_id", "account_id"),
            sa.Index("ix_phone_lookup_phone_hash", "phone_hash"),
        ),
        sa.Table(
            "sms_opt_out",
            metadata,
            sa.Column("phone_hash", sa.String(length=64), primary_key=True),
            sa.Column("phone_encrypted", sa.String(), nullable=False),
            sa.Column("account_id", sa.String(), nullable=False),
            sa.Column("opted_out_at", time, nullable=False),
        ),
        sa.Table(
            "inbound_sms",
            metadata,
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("provider", sa.String(), nullable=False),
            sa.Column("provider_message_id", sa.String(), nullable=False),
            sa.Column("phone_hash", sa.String(length=64), nullable=False),
            sa.Column("phone_encrypted", sa.String(), nullable=False),
            sa.Column("body_encrypted", sa.String(), nullable=True),
            sa.Column("body", sa.String(), nullable=False),
            sa.Column("received_at", time, nullable=False),
            sa.Column("matched_account_ids", sa.JSON(), nullable=False),
            sa.Column("signalled_account_ids", sa.JSON(), nullable=False),
            sa.Column("claimed_until", sa.Integer(), nullable=True),
            sa.Column("routed_at", time, nullable=True),
            sa.UniqueConstraint("provider", "provider_message_id"),
            sa.Index("ix_inbound_sms_phone_hash", "phone_hash"),
            sa.Index("ix_inbound_sms_provider_message_id", "provider_message_id"),
        ),
        sa.Table(
            "payment_notice",
            metadata,
            sa.Column("reference", sa.String(), primary_key=True),
            sa.Column("account_id", sa.String(), nullable=False),
            sa.Column("amount", sa.String(), nullable=False),
            sa.Column("received_at", time, nullable=False),
            sa.Column("claimed_until", sa.Integer(), nullable=True),
            sa.Column("signalled_at", time, nullable=True),
            sa.Index("ix_payment_notice_account_id", "account_id"),
        ),
        sa.Table(
            "sms_delivery",
            metadata,
            sa.Column("provider_message_id", sa.String(), primary_key=True),
            sa.Column("account_id", sa.String(), nullable=False),
            sa.Column("status", sa.String(), nullable=False),
            sa.Column("rank", sa.Integer(), nullable=False),
            sa.Column("permanent", sa.Boolean(), nullable=False),
            sa.Column("updated_at", time, nullable=False),
            sa.Column("undeliverable_signalled_at", time, nullable=True),
            sa.Index("ix_sms_delivery_account_id", "account_id"),
        ),
        sa.Table(
            "webhook_signature",
            metadata,
            sa.Column("digest", sa.String(length=64), primary_key=True),
            sa.Column("expires_at", sa.Integer(), nullable=False),
            sa.Index("ix_webhook_signature_expires_at", "expires_at"),
        ),
    ]


def upgrade() -> None:
    connection = op.get_bind()
    inspector = sa.inspect(connection)
    existing = set(inspector.get_table_names())
    for table in _tables():
        if table.name not in existing:
            table.create(connection)
            continue
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in columns:
                assert column.nullable, f"{table.name}.{column.name}: only nullable columns can be added"
                op.add_column(table.name, column._copy())
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(connection)
    for name in DROPPED_TABLES:
        if name in existing:
            op.drop_table(name)


def downgrade() -> None:
    """Not undone: below the baseline there is no Kindly database, and dropping every table would
    delete the audit log that compliance keeps."""
    raise NotImplementedError("the 1.0 baseline cannot be downgraded")
