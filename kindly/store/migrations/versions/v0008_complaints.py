"""Complaints about how the lender collects (``kindly.store.complaints``): one row per complaint, unique by
account and number, and a partial index over the open ones for the listing by deadline. Created only when
missing, like the revisions before; written out as the table is at this revision, not taken from the
model."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "resolved_at IS NULL"


def upgrade() -> None:
    if "complaint" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    time = sa.DateTime(timezone=True)
    op.create_table(
        "complaint",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("received_at", time, nullable=False),
        sa.Column("acknowledge_by", time, nullable=False),
        sa.Column("resolve_by", time, nullable=False),
        sa.Column("acknowledged_at", time, nullable=True),
        sa.Column("resolved_at", time, nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("acknowledgement_overdue_at", time, nullable=True),
        sa.Column("resolution_overdue_at", time, nullable=True),
        sa.Column("segment", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("locale", sa.String(), nullable=False),
        sa.Column("updated_at", time, nullable=False),
    )
    op.create_index("ux_complaint_account_number", "complaint", ["account_id", "number"], unique=True)
    op.create_index(
        "ix_complaint_open_deadlines",
        "complaint",
        ["acknowledge_by", "resolve_by", "received_at"],
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_table("complaint")
