"""What each account's orders at the exchange may still trade, kept as one
row per account (``in_flight_notional``) by triggers on ``orders``.

The daily limits count it before every send. Summed over the account's
orders in flight at each send, its cost grew with max_parallel (a third of
the SQLite writer's time with 64 orders in flight). The triggers keep the
total in the statement that changes an order, whatever code changes it, so
it cannot drift from the orders: an order counts (quantity - filled) x price
while it is SUBMITTED, OPEN, PARTIALLY_FILLED or UNKNOWN. PostgreSQL sums in
NUMERIC; SQLite through ``govex_in_flight_total``, which the store registers
on each connection (decimal text, exactly).

The total is built from the orders in flight at the upgrade.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from decimal import Context, Decimal

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_IN_FLIGHT = ("SUBMITTED", "OPEN", "PARTIALLY_FILLED", "UNKNOWN")
_STATES = ", ".join(f"'{s}'" for s in _IN_FLIGHT)
_COLUMNS = "state, quantity, filled, price"

# SQLite: the account's row is made if missing (plain SQL), then moved by
# one call of govex_in_flight_total, which adds the change to the total it
# is given: one call into Python per order change (an upsert computing the
# change and the sum apart made three).
_SQLITE_BODY = """
    INSERT OR IGNORE INTO in_flight_notional (account, notional)
    SELECT exchange, '0' FROM executions WHERE id = {execution};
    UPDATE in_flight_notional
    SET notional = govex_in_flight_total(notional, {old}, {new})
    WHERE account = (SELECT exchange FROM executions WHERE id = {execution});
"""
_OLD = "OLD.state, OLD.quantity, OLD.filled, OLD.price"
_NEW = "NEW.state, NEW.quantity, NEW.filled, NEW.price"
_NONE = "NULL, NULL, NULL, NULL"
_SQLITE_TRIGGERS = {
    "orders_in_flight_insert": (
        f"AFTER INSERT ON orders WHEN NEW.state IN ({_STATES})",
        _SQLITE_BODY.format(old=_NONE, new=_NEW, execution="NEW.execution_id"),
    ),
    "orders_in_flight_update": (
        f"AFTER UPDATE OF {_COLUMNS} ON orders "
        f"WHEN OLD.state IN ({_STATES}) OR NEW.state IN ({_STATES})",
        _SQLITE_BODY.format(old=_OLD, new=_NEW, execution="NEW.execution_id"),
    ),
    "orders_in_flight_delete": (
        f"AFTER DELETE ON orders WHEN OLD.state IN ({_STATES})",
        _SQLITE_BODY.format(old=_OLD, new=_NONE, execution="OLD.execution_id"),
    ),
}

_PG_FUNCTION = f"""
CREATE FUNCTION govex_orders_in_flight() RETURNS trigger AS $$
DECLARE
    delta numeric := 0;
    acct text;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.state IN ({_STATES}) THEN
        delta := delta - (OLD.quantity - OLD.filled) * OLD.price;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.state IN ({_STATES}) THEN
        delta := delta + (NEW.quantity - NEW.filled) * NEW.price;
    END IF;
    IF delta <> 0 THEN
        SELECT exchange INTO acct FROM executions
        WHERE id = (CASE WHEN TG_OP = 'DELETE' THEN OLD.execution_id ELSE NEW.execution_id END);
        INSERT INTO in_flight_notional (account, notional) VALUES (acct, delta)
        ON CONFLICT (account) DO UPDATE
        SET notional = in_flight_notional.notional + EXCLUDED.notional;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def _amount_type(dialect: str) -> sa.types.TypeEngine[object]:
    return sa.Text() if dialect == "sqlite" else sa.Numeric()


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.create_table(
        "in_flight_notional",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("notional", _amount_type(dialect), nullable=False),
    )
    rows = bind.execute(
        sa.text(
            "SELECT e.exchange, o.quantity, o.filled, o.price FROM orders AS o "
            f"JOIN executions AS e ON e.id = o.execution_id WHERE o.state IN ({_STATES})"
        )
    ).all()
    # The money context's 50 digits: exact for any amount govex stores.
    exact = Context(prec=50)
    totals: dict[str, Decimal] = {}
    for account, quantity, filled, price in rows:
        left = exact.subtract(Decimal(str(quantity)), Decimal(str(filled)))
        part = exact.multiply(left, Decimal(str(price)))
        totals[account] = exact.add(totals.get(account, Decimal(0)), part)
    for account, total in totals.items():
        bind.execute(
            sa.text("INSERT INTO in_flight_notional (account, notional) VALUES (:a, :n)"),
            {"a": account, "n": format(total, "f") if dialect == "sqlite" else total},
        )
    if dialect == "sqlite":
        for name, (when, body) in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
    else:
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER orders_in_flight AFTER INSERT OR DELETE OR UPDATE OF "
            f"{_COLUMNS} ON orders FOR EACH ROW EXECUTE FUNCTION govex_orders_in_flight()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    else:
        op.execute("DROP TRIGGER orders_in_flight ON orders")
        op.execute("DROP FUNCTION govex_orders_in_flight()")
    op.drop_table("in_flight_notional")
