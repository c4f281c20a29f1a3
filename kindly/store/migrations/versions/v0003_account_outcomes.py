"""Outcome analytics: the derived per-account outcomes, their watermark, and the audit log's index on
(``account_id``, ``at``) that folds an account's entries in time order (``kindly.analytics``).

Both tables are derived from the audit log and rebuilt from it at the first report, so there is no data
to carry over. Like the baseline, it creates what is missing and leaves what is there, so a database
whose tables or index exist already (adopted, or migrated by a process that died before recording the
revision) is brought to the same schema. Downgrading drops the two derived tables and the index: nothing
is lost that the audit log cannot give again.

The tables are written out here as they are at this revision, not taken from the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIT_INDEX = "ix_audit_log_account_id_at"


def _tables() -> list[sa.Table]:
    metadata = sa.MetaData()
    time = sa.DateTime(timezone=True)
    return [
        sa.Table(
            "account_outcomes",
            metadata,
            sa.Column("account_id", sa.String(), primary_key=True),
            sa.Column("segment", sa.String(), nullable=True),
            sa.Column("currency", sa.String(), nullable=True),
            sa.Column("amount_due", sa.String(), nullable=True),
            sa.Column("due_date", sa.Date(), nullable=True),
            sa.Column("started_at", time, nullable=True),
            sa.Column("experiments", sa.JSON(), nullable=False),
            sa.Column("cured_at", time, nullable=True),
            sa.Column("cure_day", sa.Integer(), nullable=True),
            sa.Column("settled_at", time, nullable=True),
            sa.Column("closed_at", time, nullable=True),
            sa.Column("collected", sa.String(), nullable=False),
            sa.Column("repayments", sa.Integer(), nullable=False),
            sa.Column("sms_sent", sa.Integer(), nullable=False),
            sa.Column("templates", sa.JSON(), nullable=False),
            sa.Column("call_tasks", sa.Integer(), nullable=False),
            sa.Column("replies", sa.Integer(), nullable=False),
            sa.Column("opted_out", sa.Boolean(), nullable=False),
            sa.Column("hardship", sa.Boolean(), nullable=False),
            sa.Column("dispute", sa.Boolean(), nullable=False),
            sa.Column("promises_made", sa.Integer(), nullable=False),
            sa.Column("promises_kept", sa.Integer(), nullable=False),
            sa.Column("promises_broken", sa.Integer(), nullable=False),
            sa.Column("escalated_specialist", sa.Boolean(), nullable=False),
            sa.Column("last_audit_id", sa.Integer(), nullable=False),
        ),
        sa.Table(
            "analytics_watermark",
            metadata,
            sa.Column("name", sa.String(), primary_key=True),
            sa.Column("audit_id", sa.Integer(), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("refreshed_at", time, nullable=False),
        ),
    ]


def upgrade() -> None:
    connection = op.get_bind()
    inspector = sa.inspect(connection)
    existing = set(inspector.get_table_names())
    for table in _tables():
        if table.name not in existing:
            table.create(connection)
    if AUDIT_INDEX not in {index["name"] for index in inspector.get_indexes("audit_log")}:
        op.create_index(AUDIT_INDEX, "audit_log", ["account_id", "at"])


def downgrade() -> None:
    op.drop_index(AUDIT_INDEX, table_name="audit_log")
    op.drop_table("analytics_watermark")
    op.drop_table("account_outcomes")
