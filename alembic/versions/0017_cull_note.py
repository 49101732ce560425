"""a cull's note: how it was decided when not the usual way

`cull_event.note`, e.g. "the server could not be asked (...): the hub's activity decided"
(issue #16: when keep_busy or idle_source kernels cannot look inside a server, the record
says so).

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-05 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cull_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("cull_event", schema=None) as batch_op:
        batch_op.drop_column("note")
