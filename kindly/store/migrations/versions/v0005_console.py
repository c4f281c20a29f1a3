"""The staff console's tables: the phone team's call tasks (``kindly.store.work_queue``), the specialists'
cases and their notes (``kindly.store.cases``), the console's sessions (``kindly.store.console_sessions``),
and ``audit_log.actor``, the console user an audit entry's action came from (NULL for the engine's).

``actor`` is nullable, so adding it to an audit log with rows is instant and the rows stay as they are.
Like the revisions before, it creates what is missing and leaves what is there. The partial unique
indexes (one open task, one open case per account) are created with their tables.

The tables are written out here as they are at this revision, not taken from the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "closed_at IS NULL"


def _open_per_account(name: str) -> sa.Index:
    return sa.Index(
        name, "account_id", unique=True, sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN)
    )


def _tables() -> list[sa.Table]:
    metadata = sa.MetaData()
    time = sa.DateTime(timezone=True)
    return [
        sa.Table(
            "call_task",
            metadata,
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("idempotency_key", sa.String(), nullable=False),
            sa.Column("account_id", sa.String(), nullable=False),
            sa.Column("attempt", sa.Integer(), nullable=False),
            sa.Column("reason", sa.String(), nullable=False),
            sa.Column("amount_due", sa.String(), nullable=False),
            sa.Column("currency", sa.String(), nullable=False),
            sa.Column("due_date", sa.Date(), nullable=True),
            sa.Column("timezone", sa.String(), nullable=True),
            sa.Column("locale", sa.String(), nullable=True),
            sa.Column("segment", sa.String(), nullable=True),
            sa.Column("regime", sa.String(), nullable=True),
            sa.Column("window_start", sa.Time(), nullable=True),
            sa.Column("window_end", sa.Time(), nullable=True),
            sa.Column("promise_broken", sa.Boolean(), nullable=True),
            sa.Column("call_back_at", time, nullable=True),
            sa.Column("offered_until", time, nullable=True),
            sa.Column("phone_encrypted", sa.String(), nullable=False),
            sa.Column("created_at", time, nullable=False),
            sa.Column("claimed_by", sa.String(), nullable=True),
            sa.Column("claimed_until", time, nullable=True),
            sa.Column("outcome", sa.String(), nullable=True),
            sa.Column("outcome_at", time, nullable=True),
            sa.Column("outcome_by", sa.String(), nullable=True),
            sa.Column("closed_at", time, nullable=True),
            sa.Column("closed_reason", sa.String(), nullable=True),
            sa.Index("ix_call_task_idempotency_key", "idempotency_key", unique=True),
            sa.Index("ix_call_task_account_id", "account_id"),
            sa.Index("ix_call_task_created_at", "created_at"),
            sa.Index("ix_call_task_claimed_by", "claimed_by"),
            _open_per_account("ux_call_task_open_account"),
        ),
        sa.Table(
            "specialist_case",
            metadata,
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("idempotency_key", sa.String(), nullable=False),
            sa.Column("account_id", sa.String(), nullable=False),
            sa.Column("kind", sa.String(), nullable=False),
            sa.Column("reason", sa.String(), nullable=False),
            sa.Column("amount_due", sa.String(), nullable=False),
            sa.Column("currency", sa.String(), nullable=False),
            sa.Column("due_date", sa.Date(), nullable=True),
            sa.Column("timezone", sa.String(), nullable=True),
            sa.Column("locale", sa.String(), nullable=True),
            sa.Column("segment", sa.String(), nullable=True),
            sa.Column("created_at", time, nullable=False),
            sa.Column("resolved_at", time, nullable=True),
            sa.Column("resolved_by", sa.String(), nullable=True),
            sa.Column("resolution", sa.String(), nullable=True),
            sa.Column("closed_at", time, nullable=True),
            sa.Column("closed_reason", sa.String(), nullable=True),
            sa.Index("ix_specialist_case_idempotency_key", "idempotency_key", unique=True),
            sa.Index("ix_specialist_case_account_id", "account_id"),
            sa.Index("ix_specialist_case_kind", "kind"),
            sa.Index("ix_specialist_case_created_at", "created_at"),
            _open_per_account("ux_specialist_case_open_account"),
        ),
        sa.Table(
            "case_note",
            metadata,
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("case_id", sa.Integer(), nullable=False),
            sa.Column("author", sa.String(), nullable=False),
            sa.Column("at", time, nullable=False),
            sa.Column("text", sa.String(), nullable=False),
            sa.Index("ix_case_note_case_id", "case_id"),
        ),
        sa.Table(
            "console_session",
            metadata,
            sa.Column("token_hash", sa.String(length=64), primary_key=True),
            sa.Column("user_name", sa.String(), nullable=False),
            sa.Column("created_at", time, nullable=False),
            sa.Column("expires_at", time, nullable=False),
            sa.Column("last_seen_at", time, nullable=False),
            sa.Index("ix_console_session_user_name", "user_name"),
        ),
    ]


def upgrade() -> None:
    connection = op.get_bind()
    inspector = sa.inspect(connection)
    existing = set(inspector.get_table_names())
    for table in _tables():
        if table.name not in existing:
            table.create(connection)
    if "actor" not in {column["name"] for column in inspector.get_columns("audit_log")}:
        op.add_column("audit_log", sa.Column("actor", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "actor")
    for table in reversed(_tables()):
        op.drop_table(table.name)
