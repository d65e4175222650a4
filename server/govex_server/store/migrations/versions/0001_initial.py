"""Plans, governance mode, audit log and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_utc = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("proposed_by", sa.String(64), nullable=False),
        sa.Column("proposed_under_mode", sa.String(16), nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("activated_at", _utc, nullable=True),
        sa.Column("executed_at", _utc, nullable=True),
        sa.Column("cooldown_overridden", sa.Boolean, nullable=False),
        sa.Column("created_at", _utc, nullable=False),
        sa.Column("updated_at", _utc, nullable=False),
    )
    op.create_index(
        "uq_plans_single_active",
        "plans",
        ["state"],
        unique=True,
        sqlite_where=sa.text("state = 'ACTIVE'"),
        postgresql_where=sa.text("state = 'ACTIVE'"),
    )
    op.create_index("ix_plans_state_id", "plans", ["state", "id"])
    op.create_index("ix_plans_activated_at", "plans", ["activated_at"])

    mode = op.create_table(
        "governance_mode",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", _utc, nullable=True),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    # The safest mode until an admin says otherwise.
    op.bulk_insert(
        mode, [{"id": 1, "mode": "MANUAL", "version": 1, "updated_at": None, "updated_by": ""}]
    )

    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", _utc, nullable=False),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("principal_kind", sa.String(8), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("rpc", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(128), nullable=False),
        sa.Column("etag_before", sa.String(64), nullable=True),
        sa.Column("etag_after", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_resource", "audit_log", ["resource"])

    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(64), primary_key=True),
        sa.Column("rpc", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("created_at", _utc, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("audit_log")
    op.drop_table("governance_mode")
    op.drop_table("plans")
