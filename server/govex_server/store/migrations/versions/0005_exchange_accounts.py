"""Exchange accounts configured at run time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("ccxt_id", sa.String(40), nullable=False),
        sa.Column("sandbox", sa.Boolean, nullable=False),
        sa.Column("quote", sa.String(16), nullable=False),
        sa.Column("max_orders_per_window", sa.Integer, nullable=False),
        sa.Column("credentials", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("exchange_accounts")
