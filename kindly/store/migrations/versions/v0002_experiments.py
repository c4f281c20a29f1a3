"""Experiments: the definitions operators started, which assign new accounts to arms
(``kindly.store.experiments``). Like the baseline, it creates the table only when it is missing, so a
database whose table exists already (adopted, or migrated by a process that died before recording the
revision) is brought to the same schema."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if "experiments" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    time = sa.DateTime(timezone=True)
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("definition", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("started_at", time, nullable=False),
        sa.Column("stopped_at", time, nullable=True),
        sa.Column("stop_reason", sa.String(), nullable=True),
        sa.Column("closed_arms", sa.String(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("experiments")
