"""Console users: name, role and the argon2 hash of the password, with the failed-login count and the
lock it leads to (``kindly.store.users``). Created only when missing, like the revisions before."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if "console_user" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    time = sa.DateTime(timezone=True)
    op.create_table(
        "console_user",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("created_at", time, nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", time, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("console_user")
