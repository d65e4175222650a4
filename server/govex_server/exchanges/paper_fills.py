"""The paper exchange's fill model, and a new order written to its book.

Buys fill at the reference price moved up by the slippage onto the price
step, sells at it moved down (against us), if the order's limit allows.
A fill moves balances: what the order held (its cost and fee at its limit,
or the assets sold) is released, what it bought or earned is credited.

A new order is written in as few statements as its book allows: every
statement of the book's thread waits for the GIL while the engine runs, and
a create request is the book's commonest. Its fill is worked out before the
row is written, so the row is written once, each asset's balance once
(its hold and its fill together) and nothing is read back."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

from govex_server.domain import money
from govex_server.exchanges.base import ExchangeOrder
from govex_server.exchanges.paper_book import row_to_order


@dataclass(frozen=True)
class FillModel:
    """What a fill depends on besides the order."""

    reference: Decimal
    slippage_bps: float
    price_step: Decimal
    fee_rate: Decimal


@dataclass(frozen=True)
class Fill:
    """An order after a fill, and the balance changes it makes: per asset,
    what is added to its free and to its locked amount."""

    filled: Decimal
    average_price: Decimal
    fee: Decimal
    status: str
    moves: dict[str, tuple[Decimal, Decimal]]


def fill_of(
    model: FillModel,
    symbol: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    filled: Decimal,
    average_price: Decimal,
    fee: Decimal,
    size: Decimal | None,
) -> Fill | None:
    """Fills up to ``size`` more (all that is left for None) of an open
    order of ``quantity`` at limit ``price`` that has ``filled`` so far;
    None when its limit does not cross or nothing is left."""
    base, _, quote = symbol.partition("/")
    slip = money.div(money.exact(model.slippage_bps), Decimal(10_000))
    if side == "BUY":
        fill_price = money.ceil_to(money.mul(model.reference, 1 + slip), model.price_step)
    else:
        fill_price = money.floor_to(money.mul(model.reference, 1 - slip), model.price_step)
    crosses = fill_price <= price if side == "BUY" else fill_price >= price
    left = quantity - filled
    size = left if size is None else min(size, left)
    if not crosses or size <= 0:
        return None
    cost = money.mul(size, fill_price)
    paid = money.mul(cost, model.fee_rate)
    if side == "BUY":
        held = money.mul(money.mul(size, price), 1 + model.fee_rate)
        moves = {quote: (held - cost - paid, -held), base: (size, money.ZERO)}
    else:
        moves = {base: (money.ZERO, -size), quote: (cost - paid, money.ZERO)}
    total = filled + size
    average = money.div(money.mul(average_price, filled) + cost, total)
    status = "closed" if total >= quantity else "open"
    return Fill(total, average, fee + paid, status, moves)


def write_new_order(
    db: sqlite3.Connection,
    order: tuple[str, str, str, Decimal, Decimal],
    hold: tuple[str, Decimal],
    fill: Fill | None,
    balances: dict[str, tuple[str, str]],
) -> ExchangeOrder:
    """Writes a placed order ``(client_id, symbol, side, quantity, price)``
    that holds ``hold`` (an asset and an amount) and fills as ``fill``,
    given the stored ``balances`` (free and locked text) of the assets it
    moves; the order as the book now has it."""
    client_id, symbol, side, quantity, price = order
    moves: dict[str, list[Decimal]] = {hold[0]: [-hold[1], hold[1]]}
    for asset, (free, locked) in (fill.moves if fill else {}).items():
        change = moves.setdefault(asset, [money.ZERO, money.ZERO])
        change[0] = money.CONTEXT.add(change[0], free)
        change[1] = money.CONTEXT.add(change[1], locked)
    rows = []
    for asset, (add_free, add_locked) in moves.items():
        # As govex_decimal_add would have summed them in SQL (a new asset's
        # row is the change itself).
        stored = balances.get(asset)
        free = money.CONTEXT.add(Decimal(stored[0]), add_free) if stored else add_free
        locked = money.CONTEXT.add(Decimal(stored[1]), add_locked) if stored else add_locked
        rows.append((asset, money.text(free), money.text(locked)))
    db.executemany(
        "INSERT INTO balances VALUES (?, ?, ?) ON CONFLICT (asset) DO UPDATE SET "
        "free = excluded.free, locked = excluded.locked",
        rows,
    )
    # Orders are never deleted from the book: the newest rowid is their
    # count (a count(*) would scan every order, per order).
    seq = db.execute("SELECT coalesce(max(rowid), 0) FROM orders").fetchone()[0] + 1
    row = (
        client_id,
        f"P{seq:08d}",
        symbol,
        side,
        money.text(quantity),
        money.text(price),
        money.text(fill.filled) if fill else "0",
        money.text(fill.average_price) if fill else "0",
        money.text(fill.fee) if fill else "0",
        fill.status if fill else "open",
        seq,
    )
    db.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    return row_to_order(row)
