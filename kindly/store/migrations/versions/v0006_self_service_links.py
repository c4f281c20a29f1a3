"""The self-service links reminders end with (``kindly.store.self_service_links``): the token's hash as
the key, the token sealed under the key ring, one link per touchpoint. Created only when missing, like
the revisions before; written out as the table is at this revision, not taken from the model."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if "self_service_link" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    time = sa.DateTime(timezone=True)
    op.create_table(
        "self_service_link",
        sa.Column("token_hash", sa.String(length=64), primary_key=True),
        sa.Column("token_sealed", sa.String(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("touchpoint", sa.Integer(), nullable=False),
        sa.Column("created_at", time, nullable=False),
        sa.Column("expires_at", time, nullable=False),
    )
    op.create_index(
        "ix_self_service_link_idempotency_key", "self_service_link", ["idempotency_key"], unique=True
    )
    op.create_index("ix_self_service_link_account_id", "self_service_link", ["account_id"])


def downgrade() -> None:
    op.drop_table("self_service_link")
