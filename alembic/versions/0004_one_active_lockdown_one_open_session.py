"""one active lockdown, one open session per server (partial unique indexes); seen_at

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 03:00:00

Before the indexes can exist, rows that a check-then-insert race may have left behind are
resolved: every active lockdown but the newest is ended (at its own start, by "migration"),
and every open session of a server but its newest is closed at the newer one's start.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE lockdown SET ended_at = started_at, ended_by = 'migration' "
            "WHERE ended_at IS NULL AND id <> "
            "(SELECT MAX(id) FROM lockdown WHERE ended_at IS NULL)"
        )
    )
    op.execute(
        sa.text(
            "UPDATE server_session SET stopped_at = started_at, duration_s = 0, "
            "stop_reason = 'unknown' "
            "WHERE stopped_at IS NULL AND id <> ("
            "SELECT MAX(o.id) FROM server_session o WHERE o.stopped_at IS NULL "
            'AND o."user" = server_session."user" AND o.server = server_session.server)'
        )
    )
    with op.batch_alter_table("server_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "uq_lockdown_active",
        "lockdown",
        [sa.text("(ended_at IS NULL)")],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_index(
        "uq_server_session_open",
        "server_session",
        ["user", "server"],
        unique=True,
        sqlite_where=sa.text("stopped_at IS NULL"),
        postgresql_where=sa.text("stopped_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_server_session_open", table_name="server_session")
    op.drop_index("uq_lockdown_active", table_name="lockdown")
    with op.batch_alter_table("server_session", schema=None) as batch_op:
        batch_op.drop_column("seen_at")
