"""culler keeps: "keep running" postpones a server's idle culling

`cull_keep`: one row per keep, numbered per server start (`user`, `server`, `started`, `n`
unique) so that replicas never give more than `max_keeps` (issue #16).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cull_keep",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("server", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("started", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cull_keep", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cull_keep_user"), ["user"], unique=False)
        batch_op.create_index(batch_op.f("ix_cull_keep_until"), ["until"], unique=False)
        batch_op.create_index(
            "ix_cull_keep_start_n", ["user", "server", "started", "n"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("cull_keep", schema=None) as batch_op:
        batch_op.drop_index("ix_cull_keep_start_n")
        batch_op.drop_index(batch_op.f("ix_cull_keep_until"))
        batch_op.drop_index(batch_op.f("ix_cull_keep_user"))
    op.drop_table("cull_keep")
