"""The provider alarms (``kindly.store.alarms``): the lender's account with the SMS provider cannot send, and
sending through it is held until an operator clears the alarm. One open alarm per provider and code, kept so
by a partial unique index over the open ones. Created only when missing, like the revisions before; written
out as the table is at this revision, not taken from the model."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "cleared_at IS NULL"


def upgrade() -> None:
    if "provider_alarm" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    time = sa.DateTime(timezone=True)
    op.create_table(
        "provider_alarm",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("first_at", time, nullable=False),
        sa.Column("last_at", time, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("cleared_at", time, nullable=True),
        sa.Column("cleared_by", sa.String(), nullable=True),
    )
    op.create_index("ix_provider_alarm_provider", "provider_alarm", ["provider"])
    op.create_index(
        "ux_provider_alarm_open",
        "provider_alarm",
        ["provider", "code"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_table("provider_alarm")
