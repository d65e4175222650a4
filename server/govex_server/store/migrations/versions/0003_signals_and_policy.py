"""Signal sets and the policy engine's persisted state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signal_sets",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("publisher", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ix_signal_sets_as_of", "signal_sets", ["as_of"])
    state = op.create_table(
        "policy_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("phase", sa.JSON, nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "version": 0, "policy": {}, "phase": {}}])


def downgrade() -> None:
    op.drop_table("policy_state")
    op.drop_table("signal_sets")
