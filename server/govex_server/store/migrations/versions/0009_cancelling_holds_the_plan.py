"""An execution being cancelled (CANCELLING, new) still holds its plan: the
one-running-execution-per-plan index covers it, so no second execution of the
plan can start while the first one's orders are being cancelled.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_NAME = "uq_executions_one_running_per_plan"


def _index(states: str) -> None:
    op.create_index(
        _NAME,
        "executions",
        ["plan_id"],
        unique=True,
        sqlite_where=sa.text(f"state IN ({states})"),
        postgresql_where=sa.text(f"state IN ({states})"),
    )


def upgrade() -> None:
    op.drop_index(_NAME, table_name="executions")
    _index("'PENDING', 'RUNNING', 'CANCELLING'")


def downgrade() -> None:
    op.drop_index(_NAME, table_name="executions")
    _index("'PENDING', 'RUNNING'")
