"""The outcome analytics count complaints (``kindly.analytics.outcomes``): three columns of
``account_outcomes``, complaints opened, acknowledged late and resolved late.

Each is ``NOT NULL DEFAULT 0``: instant on a table with rows, and a process of the version before, which
names its columns, still writes its rows. The rows are rebuilt from the audit log at the next report anyway
(the definitions' version changed). Like the revisions before, it adds what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("complaints_opened", "complaints_acknowledged_late", "complaints_resolved_late")


def upgrade() -> None:
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("account_outcomes")}
    for name in COLUMNS:
        if name not in present:
            op.add_column(
                "account_outcomes", sa.Column(name, sa.Integer(), nullable=False, server_default="0")
            )


def downgrade() -> None:
    with op.batch_alter_table("account_outcomes") as batch:  # SQLite rebuilds the table
        for name in COLUMNS:
            batch.drop_column(name)
