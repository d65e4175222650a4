"""Executions are owned by lease: the replica running one (``owner``), until
when (``lease_expires``), and a fencing token (``lease_generation``, bumped
on every claim) that every write of the owner's runner checks, so that a
replica whose lease was taken over can no longer change its orders.
Executions running before this revision are unowned and claimed at start.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("lease_generation", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("lease_generation")
        batch.drop_column("lease_expires")
        batch.drop_column("owner")
