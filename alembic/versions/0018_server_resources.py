"""server resources: the last figures per running server, and per session

`server_resource`: what jupyter-resource-usage said of each running server at the last
sampling pass. `server_session` gains the session's peak memory, its mean CPU (a running
mean over `cpu_samples`) and its memory limit (issue #18, "Resources per server").

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "server_resource",
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("server", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("memory_limit_bytes", sa.BigInteger(), nullable=True),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user", "server"),
    )
    with op.batch_alter_table("server_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("mean_cpu_percent", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("cpu_samples", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("memory_limit_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("server_session", schema=None) as batch_op:
        batch_op.drop_column("memory_limit_bytes")
        batch_op.drop_column("cpu_samples")
        batch_op.drop_column("mean_cpu_percent")
        batch_op.drop_column("peak_memory_bytes")

    op.drop_table("server_resource")
