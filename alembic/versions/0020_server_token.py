"""server tokens kept, sealed: a restart or a new leader reuses them (issue #14)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AutoString = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "server_token",
        sa.Column("user", AutoString(length=255), nullable=False),
        sa.Column("server", AutoString(length=255), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renew_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user", "server"),
    )
    op.create_index("ix_server_token_expires_at", "server_token", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_server_token_expires_at", table_name="server_token")
    op.drop_table("server_token")
