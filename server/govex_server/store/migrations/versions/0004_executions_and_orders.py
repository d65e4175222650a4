"""Executions, orders and the daily traded notional.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_utc = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("plan_id", sa.String(26), nullable=False),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("strategy", sa.String(12), nullable=False),
        sa.Column("max_parallel", sa.Integer, nullable=False),
        sa.Column("safety_level", sa.String(12), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("actor_kind", sa.String(8), nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False),
        sa.Column("legs", sa.JSON, nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("portfolio_value", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", _utc, nullable=False),
        sa.Column("ended_at", _utc, nullable=True),
    )
    op.create_index(
        "uq_executions_one_running_per_plan",
        "executions",
        ["plan_id"],
        unique=True,
        sqlite_where=sa.text("state IN ('PENDING', 'RUNNING')"),
        postgresql_where=sa.text("state IN ('PENDING', 'RUNNING')"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("execution_id", sa.String(26), nullable=False),
        sa.Column("client_order_id", sa.String(40), nullable=False, unique=True),
        sa.Column("exchange_order_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("reference_price", sa.Float, nullable=False),
        sa.Column("filled", sa.Float, nullable=False),
        sa.Column("average_price", sa.Float, nullable=False),
        sa.Column("fee", sa.Float, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False),
        sa.Column("leg_index", sa.Integer, nullable=False),
        sa.Column("slice_index", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(20), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("scheduled_at", _utc, nullable=False),
        sa.Column("safety", sa.JSON, nullable=False),
        sa.Column("created_at", _utc, nullable=False),
        sa.Column("updated_at", _utc, nullable=False),
    )
    op.create_index("ix_orders_execution_id", "orders", ["execution_id"])
    op.create_index("ix_orders_state", "orders", ["state"])
    op.create_table(
        "daily_notional",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("notional", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("daily_notional")
    op.drop_table("orders")
    op.drop_table("executions")
