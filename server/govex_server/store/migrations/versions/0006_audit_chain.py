"""The audit log becomes a hash chain; idempotency keys can be pruned by age.

Existing records are chained in their id order.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from govex_server.domain import audit_chain

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FIELDS = [sa.column(name) for name in audit_chain.FIELDS]


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("sequence", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("previous_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    log = sa.table(
        "audit_log",
        sa.column("id"),
        sa.column("details", sa.JSON),
        *(c for c in _FIELDS if c.name != "details"),
        sa.column("sequence"),
        sa.column("previous_hash"),
        sa.column("hash"),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(log).order_by(log.c.id)).mappings().all()
    previous = audit_chain.GENESIS
    for sequence, row in enumerate(rows, start=1):
        digest = audit_chain.link(previous, audit_chain.content(sequence, row))
        bind.execute(
            sa.update(log)
            .where(log.c.id == row["id"])
            .values(sequence=sequence, previous_hash=previous, hash=digest)
        )
        previous = digest
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("sequence", existing_type=sa.BigInteger, nullable=False)
        batch.alter_column("previous_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_audit_log_sequence", ["sequence"])
    op.create_index("ix_audit_log_principal", "audit_log", ["principal"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "sequence": len(rows), "hash": previous}])
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", "idempotency_keys")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_principal", "audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_log_sequence", type_="unique")
        batch.drop_column("hash")
        batch.drop_column("previous_hash")
        batch.drop_column("sequence")
