"""Freezes, the event log and its gap-free counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_utc = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "freezes",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", _utc, nullable=False),
        sa.Column("expire_time", _utc, nullable=False),
        sa.Column("end_time", _utc, nullable=True),
        sa.Column("end_kind", sa.String(8), nullable=True),
        sa.Column("ended_by", sa.String(64), nullable=False),
        sa.Column("end_reason", sa.Text, nullable=False),
    )
    op.create_index("ix_freezes_end_kind_expire_time", "freezes", ["end_kind", "expire_time"])
    op.create_table(
        "events",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("time", _utc, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(128), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_events_time", "events", ["time"])
    counter = op.create_table(
        "event_counter",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(counter, [{"id": 1, "value": 0}])


def downgrade() -> None:
    op.drop_table("event_counter")
    op.drop_table("events")
    op.drop_table("freezes")
