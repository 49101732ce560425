"""the user directory shared between replicas

`directory_user` (one row per user, as the replica leading `directory-sync` last saw it, with
a growing `seq`) and `directory_state` (its sync times): only that replica asks the hub; the
others read what changed (issue #14).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 15:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "directory_user",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("directory_user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_directory_user_seq"), ["seq"], unique=False)
    op.create_table(
        "directory_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("full_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hub_total", sa.Integer(), nullable=True),
        sa.Column("replica", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("directory_state")
    with op.batch_alter_table("directory_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_user_seq"))
    op.drop_table("directory_user")
