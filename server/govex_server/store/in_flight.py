"""``govex_in_flight_total``: the SQLite function the ``orders`` triggers
of ``in_flight_notional`` call (migration 0011).

Given an account's total of what its orders at the exchange may still
trade, and an order's state and amounts before and after a change (NULLs
for an insert or a delete), it returns the new total, as decimal text. The
rule is the domain's (``still_to_trade``, counted while the order is at the
exchange), in the money context: exact, as SQLite's own arithmetic (binary
floats) would not be."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from govex_server.domain import money
from govex_server.domain.execution.budget import still_to_trade
from govex_server.domain.execution.orders import AT_EXCHANGE

_IN_FLIGHT = frozenset(s.value for s in AT_EXCHANGE)


def _part(state: str | None, *amounts: str | None) -> Decimal:
    """One side of the change: what the order counts (zero out of flight)."""
    if state not in _IN_FLIGHT:
        return money.ZERO
    quantity, filled, price = (Decimal(a) if a is not None else money.ZERO for a in amounts)
    return still_to_trade(quantity, filled, price)


def _total(total: str, *values: str | None) -> str:
    before, after = _part(*values[:4]), _part(*values[4:])
    if before == after:
        return total
    moved = money.CONTEXT.add(Decimal(total), money.CONTEXT.subtract(after, before))
    return money.text(moved)


def register(connection: Any) -> None:
    """Registers the function on a sqlite3 connection."""
    connection.create_function("govex_in_flight_total", 9, _total, deterministic=True)
