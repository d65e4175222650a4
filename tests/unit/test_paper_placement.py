"""A new paper order is written in one pass (paper_fills.py: its row once,
each balance once, nothing read back), and that pass leaves the book exactly
as placing it step by step did: hold the balance, insert the open order,
then fill it, each change summed in SQL by govex_decimal_add. Random orders,
balances and partial fills; the stored text is compared, not only values."""

from __future__ import annotations

import functools
import sqlite3
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from govex_server.domain import money
from govex_server.exchanges.base import ExchangeOrder
from govex_server.exchanges.errors import ExchangeError, InsufficientFunds, OrderRejected
from govex_server.exchanges.paper import PaperConfig, PaperExchange, _move, _order
from govex_server.exchanges.paper_book import PaperBook

D = Decimal


def _step_by_step(
    paper: PaperExchange,
    config: PaperConfig,
    db: sqlite3.Connection,
    request: tuple[str, str, str, Decimal, Decimal, Decimal],
) -> ExchangeOrder:
    """How a new order was placed before the one-pass write."""
    client_id, symbol, side, quantity, price, ratio = request
    if db.execute("SELECT 1 FROM orders WHERE client_id = ?", (client_id,)).fetchone():
        raise OrderRejected("Duplicate order sent")
    base, _, quote = symbol.partition("/")
    if side == "BUY":
        hold_asset, hold = quote, money.mul(money.mul(quantity, price), 1 + config.fee_rate)
    else:
        hold_asset, hold = base, quantity
    row = db.execute("SELECT free FROM balances WHERE asset = ?", (hold_asset,)).fetchone()
    if (money.exact(row[0]) if row else money.ZERO) < hold:
        raise InsufficientFunds(f"needs {hold} {hold_asset}")
    _move(db, hold_asset, -hold, +hold)
    seq = db.execute("SELECT coalesce(max(rowid), 0) FROM orders").fetchone()[0] + 1
    db.execute(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, '0', '0', '0', 'open', ?)",
        (client_id, f"P{seq:08d}", symbol, side, money.text(quantity), money.text(price), seq),
    )
    paper._fill(db, client_id, money.down_to(money.mul(quantity, ratio), config.amount_step))
    return _order(db, client_id)


def _outcome(call: Callable[[], ExchangeOrder]) -> object:
    try:
        return call()
    except ExchangeError as refusal:
        return (type(refusal).__name__, str(refusal))


requests = st.lists(
    st.tuples(
        st.sampled_from(["gxA", "gxB", "gxC"]),  # repeats are duplicates
        st.sampled_from(["BUY", "SELL"]),
        st.integers(min_value=1, max_value=300_000).map(lambda n: D(n) * D("0.00001")),
        # Limits around the reference: some cross, some rest.
        st.integers(min_value=4_990_000, max_value=5_010_000).map(lambda n: D(n) * D("0.01")),
        st.sampled_from([D(1), D("0.5"), D("0.3"), D(0)]),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(
    requests,
    st.integers(min_value=0, max_value=200_000).map(D),
    st.integers(min_value=0, max_value=300).map(lambda n: D(n) * D("0.01")),
    st.sampled_from([D("0.001"), D("0.00075"), D(0)]),
)
def test_one_pass_leaves_the_book_as_the_steps_did(
    orders: list[tuple[str, str, Decimal, Decimal, Decimal]],
    usdt: Decimal,
    btc: Decimal,
    fee_rate: Decimal,
) -> None:
    config = PaperConfig(
        balances={"USDT": usdt, "BTC": btc} if btc else {"USDT": usdt},
        prices={"BTC": D(50_000)},
        slippage_bps=7,
        fee_rate=fee_rate,
    )
    with tempfile.TemporaryDirectory() as tmp:
        books = [PaperBook(str(Path(tmp) / f"{n}.db"), config.balances) for n in "ab"]
        one_pass, steps = (PaperExchange("paper", config, book) for book in books)
        a, b = books[0]._db, books[1]._db
        try:
            for client_id, side, quantity, price, ratio in orders:
                request = (client_id, "BTC/USDT", side, quantity, price, ratio)
                got = _outcome(functools.partial(one_pass._place, a, *request))
                want = _outcome(functools.partial(_step_by_step, steps, config, b, request))
                assert got == want
            for table in ("orders", "balances"):
                query = f"SELECT * FROM {table} ORDER BY 1"
                assert a.execute(query).fetchall() == b.execute(query).fetchall()
        finally:
            for book in books:
                book.close()
