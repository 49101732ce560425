"""server activity in 5-minute buckets

`server_activity`: one row per server per UTC day it was used, with a bitmap of 288 buckets
per source (hub/route activity, kernel activity), for the culler's backtest (issue #18).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "server_activity",
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("server", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("hub", sa.LargeBinary(), nullable=False),
        sa.Column("kernels", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("user", "server", "day"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("server_activity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_server_activity_day"), ["day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("server_activity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_server_activity_day"))
    op.drop_table("server_activity")
