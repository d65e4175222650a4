"""Amounts become exact decimals: NUMERIC on PostgreSQL, decimal text on
SQLite (whose NUMERIC affinity would keep binary floats).

Every existing value is rewritten as the decimal its float was written as
(its shortest repr: 0.1 stays 0.1, not 0.1000000000000000055...).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# table -> (primary key columns, amount columns)
AMOUNTS = {
    "executions": (("id",), ("portfolio_value",)),
    "orders": (("id",), ("quantity", "price", "reference_price", "filled", "average_price", "fee")),
    "daily_notional": (("account", "day"), ("notional",)),
}


def _canonical(value: object) -> str:
    """A stored float as the decimal it was written as, in plain notation."""
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    text = format(exact, "f")
    return "0" if exact.is_zero() else text


def _amount_type(dialect: str) -> sa.types.TypeEngine[object]:
    return sa.Text() if dialect == "sqlite" else sa.Numeric()


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    for table, (keys, columns) in AMOUNTS.items():
        handle = sa.table(table, *(sa.column(c) for c in (*keys, *columns)))
        # Read the floats before the type changes: SQLite's own REAL -> TEXT
        # conversion keeps 15 digits in exponent notation.
        rows = bind.execute(sa.select(handle)).mappings().all()
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    type_=_amount_type(dialect),
                    existing_nullable=False,
                    postgresql_using=f"{column}::numeric",
                )
        for row in rows:
            values = {
                c: _canonical(row[c]) if dialect == "sqlite" else Decimal(_canonical(row[c]))
                for c in columns
            }
            bind.execute(
                sa.update(handle).where(*(handle.c[k] == row[k] for k in keys)).values(**values)
            )


def downgrade() -> None:
    for table, (_keys, columns) in AMOUNTS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    type_=sa.Float(),
                    existing_nullable=False,
                    postgresql_using=f"{column}::double precision",
                )
