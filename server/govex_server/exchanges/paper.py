"""The paper exchange: the embedded default account, deterministic, with
balances, prices, fees, slippage, latency and partial fills from
configuration, and faults that tests inject.

Its book (balances and orders by client order id) lives in a SQLite file of
its own, written in its own transactions, never in ours: a crash between "the
exchange accepted" and "we recorded it" happens exactly as with a real
exchange, and the order is still there to be found by its client order id."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.execution.safety import Market
from govex_server.exchanges.base import Balance, ExchangeOrder
from govex_server.exchanges.errors import (
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)
from govex_server.exchanges.paper_book import PaperBook, row_to_order
from govex_server.exchanges.paper_config import PaperConfig
from govex_server.exchanges.paper_fills import FillModel, fill_of, write_new_order

__all__ = ["FAULTS", "PaperConfig", "PaperExchange"]

D = Decimal
# A new order's filled quantity, average price and fee.
_UNFILLED = (money.ZERO, money.ZERO, money.ZERO)


FAULTS = frozenset(
    {
        "reject",
        "insufficient_funds",
        "timeout_before",
        "timeout_after",
        "rate_limited",
        "unavailable",
        "partial_fill",
        "fill_races_cancel",
        # The account's reads failing (one call each).
        "prices_unavailable",
        "markets_unavailable",
        "balances_unavailable",
        "cancel_refused",
    }
)


class PaperExchange:
    """The paper account (always a sandbox: it never touches real money):
    markets and prices from configuration, balances and orders in its book."""

    kind = "paper"
    sandbox = True

    def __init__(
        self,
        account: str,
        config: PaperConfig,
        book: PaperBook,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = account
        self.accept_window = (config.latency_ms + config.recv_window_ms) / 1000
        # When a create request was sent and when it arrived (recvWindow).
        self._monotonic = monotonic
        self.quote = config.quote
        self._config = config
        self._book = book
        self._faults: deque[str] = deque()
        # Cancels refused by the "cancel_refused" fault (tests count them).
        self.cancels_refused = 0

    @property
    def book_seconds(self) -> float:
        """CPU seconds this simulated exchange's book has spent: its own
        cost, which a real exchange would bear (the metric
        govex_paper_book_cpu_seconds reports it apart from govex's)."""
        return self._book.busy_seconds

    async def markets(self) -> dict[str, Market]:
        """One market per priced asset against the quote currency."""
        if self._take("markets_unavailable"):
            raise ExchangeUnavailable("503 Service Unavailable (markets)")
        c = self._config
        return {
            f"{asset}/{c.quote}": Market(c.amount_step, c.price_step, c.min_notional)
            for asset in c.prices
        }

    async def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        """The configured prices of the assets that have one."""
        if self._take("prices_unavailable"):
            raise ExchangeUnavailable("503 Service Unavailable (prices)")
        return {a: self._config.prices[a] for a in assets if a in self._config.prices}

    @property
    def fee_rate(self) -> Decimal:
        """The taker fee."""
        return self._config.fee_rate

    def close(self) -> None:
        """Closes the book."""
        self._book.close()

    def inject(self, fault: str, times: int = 1) -> None:
        """The next ``times`` calls that a fault applies to meet it."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: one of {sorted(FAULTS)}")
        self._faults.extend([fault] * times)

    def _take(self, *applicable: str) -> str | None:
        if self._faults and self._faults[0] in applicable:
            return self._faults.popleft()
        return None

    async def balances(self) -> dict[str, Balance]:
        """Free and total (free + locked) per asset, from the book."""
        if self._take("balances_unavailable"):
            raise ExchangeUnavailable("503 Service Unavailable (balances)")

        def read(db: sqlite3.Connection) -> dict[str, Balance]:
            rows = db.execute("SELECT asset, free, locked FROM balances").fetchall()
            held = [(a, money.exact(f), money.exact(lk)) for a, f, lk in rows]
            return {a: Balance(f, f + lk) for a, f, lk in held if f + lk > 0}

        return await self._book.run(read)

    async def create_order(
        self, client_id: str, symbol: str, side: str, quantity: Decimal, price: Decimal
    ) -> ExchangeOrder:
        """Places a limit order; fills what the fill model allows at once.

        ``latency_ms`` is the round trip: the request reaches the book after
        half of it, and the answer (an order or a refusal) comes back when
        all of it has passed since the send, or as soon as the book is done
        if that takes longer. The book's own time falls inside the round
        trip, as a real exchange's matching does, instead of adding to it:
        this book shares the engine's process and GIL, and under load it
        made a 20 ms round trip take 23-30 ms."""
        sent = self._monotonic()
        way = self._config.latency_ms / 2000
        if way:
            await asyncio.sleep(way)
        try:
            order = await self._arrive(sent, way, client_id, symbol, side, quantity, price)
        except ExchangeError:
            await self._way_back(sent, way)  # a refusal comes back as slowly
            raise
        await self._way_back(sent, way)
        return order

    async def _way_back(self, sent: float, way: float) -> None:
        back = sent + 2 * way - self._monotonic() if way else 0.0
        if back > 0:
            await asyncio.sleep(back)

    async def _arrive(
        self,
        sent: float,
        way: float,
        client_id: str,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
    ) -> ExchangeOrder:
        """The create request at the exchange, ``way`` seconds after it was
        sent (unless it was held up on its way)."""
        late = self._monotonic() - sent - way
        if late * 1000 > self._config.recv_window_ms:
            raise OrderRejected(
                f"Timestamp for this request is outside of the recvWindow ({late:.1f}s late)"
            )
        fault = self._take(
            "reject",
            "insufficient_funds",
            "timeout_before",
            "timeout_after",
            "rate_limited",
            "unavailable",
            "partial_fill",
        )
        if fault == "unavailable":
            raise ExchangeUnavailable("503 Service Unavailable")
        if fault == "rate_limited":
            raise RateLimited("429 Too Many Requests", retry_after=2.0)
        if fault == "timeout_before":
            raise OutcomeUnknown("timed out before the exchange answered")
        if fault == "reject":
            raise OrderRejected("order rejected by the exchange")
        if fault == "insufficient_funds":
            raise InsufficientFunds("insufficient balance")
        ratio = D("0.5") if fault == "partial_fill" else money.exact(self._config.fill_ratio)

        def receive_and_place(db: sqlite3.Connection) -> ExchangeOrder | ExchangeError:
            # One transaction: the receipt is counted even when the exchange
            # refuses the order (a duplicate, no funds: _place refuses before
            # it writes), so the refusal is returned, not raised, and commits.
            _received(db, client_id)
            try:
                return self._place(db, client_id, symbol, side, quantity, price, ratio)
            except ExchangeError as refusal:
                return refusal

        order = await self._book.run(receive_and_place)
        if isinstance(order, ExchangeError):
            raise order
        if fault == "timeout_after":
            raise OutcomeUnknown("timed out after the exchange accepted the order")
        return order

    def _place(
        self,
        db: sqlite3.Connection,
        client_id: str,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        ratio: Decimal,
    ) -> ExchangeOrder:
        if db.execute("SELECT 1 FROM orders WHERE client_id = ?", (client_id,)).fetchone():
            raise OrderRejected("Duplicate order sent")
        base, _, quote = symbol.partition("/")
        reference = self._config.prices.get(base)
        if reference is None or quote != self._config.quote:
            raise OrderRejected(f"unknown symbol {symbol}")
        fee_rate = self._config.fee_rate
        if side == "BUY":
            hold_asset, hold = quote, money.mul(money.mul(quantity, price), 1 + fee_rate)
        else:
            hold_asset, hold = base, quantity
        # Both assets' balances at once: the hold's, and the fill's.
        balances = {
            str(asset): (str(free), str(locked))
            for asset, free, locked in db.execute(
                "SELECT asset, free, locked FROM balances WHERE asset IN (?, ?)", (base, quote)
            )
        }
        free = money.exact(balances[hold_asset][0]) if hold_asset in balances else money.ZERO
        if free < hold:
            raise InsufficientFunds(f"needs {hold} {hold_asset}")
        # A partial fill is cut down onto the amount step, as an exchange would.
        size = money.down_to(money.mul(quantity, ratio), self._config.amount_step)
        fill = fill_of(self._fill_model(base), symbol, side, quantity, price, *_UNFILLED, size)
        return write_new_order(
            db, (client_id, symbol, side, quantity, price), (hold_asset, hold), fill, balances
        )

    def _fill_model(self, base: str) -> FillModel:
        c = self._config
        return FillModel(c.prices[base], c.slippage_bps, c.price_step, c.fee_rate)

    def _fill(self, db: sqlite3.Connection, client_id: str, size: Decimal | None) -> None:
        """Fills up to ``size`` more (all that is left for None) of an open
        order, if its limit allows (paper_fills.py: the fill model)."""
        o = _order(db, client_id)
        base = o.symbol.partition("/")[0]
        fill = fill_of(
            self._fill_model(base),
            o.symbol,
            o.side,
            o.quantity,
            o.price,
            o.filled,
            o.average_price,
            o.fee,
            size,
        )
        if fill is None:
            return
        for asset, (free, locked) in fill.moves.items():
            _move(db, asset, free, locked)
        db.execute(
            "UPDATE orders SET filled = ?, average_price = ?, fee = ?, status = ? "
            "WHERE client_id = ?",
            (
                money.text(fill.filled),
                money.text(fill.average_price),
                money.text(fill.fee),
                fill.status,
                client_id,
            ),
        )

    async def fetch_order(self, client_id: str, symbol: str = "") -> ExchangeOrder:
        """The order with this client order id, or OrderNotFound."""
        return await self._book.run(lambda db: _order(db, client_id))

    async def cancel_order(self, client_id: str, symbol: str = "") -> ExchangeOrder:
        """Cancels what is left of an open order; the order as it ends up
        (a fill may win the race: the order is then closed, not canceled)."""
        fault = self._take("fill_races_cancel", "cancel_refused")
        if fault == "cancel_refused":
            self.cancels_refused += 1
            raise ExchangeUnavailable("503 Service Unavailable (cancel)")
        race = fault == "fill_races_cancel"

        def cancel(db: sqlite3.Connection) -> ExchangeOrder:
            o = _order(db, client_id)
            if o.status != "open":
                return o
            if race:
                self._fill(db, client_id, None)
                o = _order(db, client_id)
                if o.status != "open":
                    return o
            base, _, quote = o.symbol.partition("/")
            left = o.quantity - o.filled
            if o.side == "BUY":
                held = money.mul(money.mul(left, o.price), 1 + self._config.fee_rate)
                _move(db, quote, held, -held)
            else:
                _move(db, base, left, -left)
            db.execute("UPDATE orders SET status = 'canceled' WHERE client_id = ?", (client_id,))
            return _order(db, client_id)

        return await self._book.run(cancel)

    async def orders(self, prefix: str, open_only: bool = False) -> list[ExchangeOrder]:
        """Orders whose client order id starts with ``prefix`` (ours); as
        slow as a send (the listing reconciliation waits for at start-up)."""
        if self._config.latency_ms:
            await asyncio.sleep(self._config.latency_ms / 1000)

        def read(db: sqlite3.Connection) -> list[ExchangeOrder]:
            query = "SELECT * FROM orders WHERE substr(client_id, 1, ?) = ?"
            if open_only:
                query += " AND status = 'open'"
            rows = db.execute(query + " ORDER BY seq", (len(prefix), prefix)).fetchall()
            return [row_to_order(r) for r in rows]

        return await self._book.run(read)

    async def received(self) -> dict[str, int]:
        """How many create requests reached the exchange, per client order id."""
        return dict(
            await self._book.run(lambda db: db.execute("SELECT * FROM received").fetchall())
        )

    async def fill_resting(self) -> None:
        """Lets resting orders fill what the fill model allows (the market moved)."""

        def fill(db: sqlite3.Connection) -> None:
            for (client_id,) in db.execute(
                "SELECT client_id FROM orders WHERE status = 'open'"
            ).fetchall():
                self._fill(db, client_id, None)

        await self._book.run(fill)


def _received(db: sqlite3.Connection, client_id: str) -> None:
    """Counts every create request that reached the exchange (duplicates
    included): how tests prove no client order id was sent twice."""
    db.execute(
        "INSERT INTO received VALUES (?, 1) "
        "ON CONFLICT (client_id) DO UPDATE SET count = count + 1",
        (client_id,),
    )


def _move(db: sqlite3.Connection, asset: str, free: Decimal, locked: Decimal) -> None:
    """Adds to an asset's free and locked amounts, exactly, in one statement
    (govex_decimal_add: SQLite's own + would go through binary floats)."""
    db.execute(
        "INSERT INTO balances VALUES (?, ?, ?) ON CONFLICT (asset) DO UPDATE SET "
        "free = govex_decimal_add(free, excluded.free), "
        "locked = govex_decimal_add(locked, excluded.locked)",
        (asset, money.text(free), money.text(locked)),
    )


def _order(db: sqlite3.Connection, client_id: str) -> ExchangeOrder:
    row = db.execute("SELECT * FROM orders WHERE client_id = ?", (client_id,)).fetchone()
    if row is None:
        raise OrderNotFound(f"no order {client_id}")
    return row_to_order(row)
