"""backtest summary: per closed session, its record gaps (issue #18, the backtest of a year)

The culler's backtest aggregates these in SQL instead of reading every session's activity
into Python (hubkeeper.culler.backtest_summary). Built and backfilled by the leader's
backtest-summary loop from `server_session` and `server_activity`; nothing is copied here.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AutoString = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "backtest_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user", AutoString(length=255), nullable=False),
        sa.Column("groups", sa.Text(), nullable=True),
        sa.Column("profile", AutoString(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "backtest_session",
        sa.Column("session_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kid", sa.Integer(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("stop_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_index(
        "ix_backtest_session_kid",
        "backtest_session",
        ["kid", "start_us", "start_s", "stop_s"],
        unique=False,
    )
    op.create_table(
        "backtest_gap",
        sa.Column("source", AutoString(length=16), nullable=False),
        sa.Column("kid", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("f", sa.Float(), nullable=False),
        sa.Column("lo", sa.Float(), nullable=False),
        sa.Column("hi", sa.Float(), nullable=False),
        sa.Column("a", sa.Float(), nullable=False),
        sa.Column("rb", sa.Float(), nullable=True),
        sa.Column("ret", sa.Float(), nullable=True),
        sa.Column("ret_us", sa.BigInteger(), nullable=True),
        sa.Column("many", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("source", "kid", "session_id", "seq"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "backtest_return",
        sa.Column("session_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at_us", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "at_us"),
    )
    op.create_table(
        "backtest_summary_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("done_id", sa.Integer(), nullable=False),
        sa.Column("max_seen", sa.Integer(), nullable=False),
        sa.Column("waiting", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "backtest_stale",
        sa.Column("user", AutoString(length=255), nullable=False),
        sa.Column("server", AutoString(length=255), nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("user", "server", "bucket"),
    )


def downgrade() -> None:
    op.drop_table("backtest_stale")
    op.drop_table("backtest_summary_state")
    op.drop_table("backtest_return")
    op.drop_table("backtest_gap")
    op.drop_index("ix_backtest_session_kid", table_name="backtest_session")
    op.drop_table("backtest_session")
    op.drop_table("backtest_key")
