"""The paper exchange: the embedded default account, deterministic, with
balances, prices, fees, slippage, latency and partial fills from
configuration, and faults that tests inject.

Its book (balances and orders by client order id) lives in a SQLite file of
its own, written in its own transactions, never in ours: a crash between "the
exchange accepted" and "we recorded it" happens exactly as with a real
exchange, and the order is still there to be found by its client order id."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import tomllib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govex_server.domain.execution.safety import Market
from govex_server.exchanges.base import Balance, ExchangeOrder
from govex_server.exchanges.errors import (
    ExchangeUnavailable,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)
from govex_server.exchanges.paper_book import PaperBook, row_to_order


@dataclass(frozen=True)
class PaperConfig:
    """Starting balances, prices and market rules of the paper account."""

    quote: str = "USDT"
    fee_rate: float = 0.001
    balances: dict[str, float] = field(
        default_factory=lambda: {"USDT": 100_000.0, "BTC": 1.0, "ETH": 10.0}
    )
    prices: dict[str, float] = field(
        default_factory=lambda: {"BTC": 50_000.0, "ETH": 2_500.0, "SOL": 150.0}
    )
    amount_step: float = 0.00001
    price_step: float = 0.01
    min_notional: float = 10.0
    # Fill model: buys fill at reference x (1 + slippage), sells at
    # reference x (1 - slippage), if the limit allows; else the order rests.
    slippage_bps: float = 5.0
    latency_ms: float = 0.0
    # Share of an order filled at once (1 = all); the rest rests open.
    fill_ratio: float = 1.0

    @staticmethod
    def load(path: str) -> PaperConfig:
        """Reads a TOML file: ``quote``, ``fee_rate``, ``amount_step``,
        ``price_step``, ``min_notional``, ``[balances]``, ``[prices]``."""
        document: dict[str, Any] = tomllib.loads(Path(path).read_text())
        unknown = set(document) - {f for f in PaperConfig.__dataclass_fields__}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        config = PaperConfig(**document)
        for name, table in (("balances", config.balances), ("prices", config.prices)):
            for asset, value in table.items():
                if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                    raise ValueError(f"{path}: {name}.{asset} must be a number >= 0")
        return config


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
    }
)


class PaperExchange:
    """The paper account (always a sandbox: it never touches real money):
    markets and prices from configuration, balances and orders in its book."""

    kind = "paper"
    sandbox = True

    def __init__(self, account: str, config: PaperConfig, book: PaperBook) -> None:
        self.account = account
        self.quote = config.quote
        self._config = config
        self._book = book
        self._faults: deque[str] = deque()

    async def markets(self) -> dict[str, Market]:
        """One market per priced asset against the quote currency."""
        c = self._config
        return {
            f"{asset}/{c.quote}": Market(c.amount_step, c.price_step, c.min_notional)
            for asset in c.prices
        }

    async def prices(self, assets: Iterable[str]) -> dict[str, float]:
        """The configured prices of the assets that have one."""
        return {a: self._config.prices[a] for a in assets if a in self._config.prices}

    @property
    def fee_rate(self) -> float:
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

        def read(db: sqlite3.Connection) -> dict[str, Balance]:
            rows = db.execute("SELECT asset, free, locked FROM balances").fetchall()
            return {a: Balance(f, f + lk) for a, f, lk in rows if f + lk > 0}

        return await self._book.run(read)

    async def create_order(
        self, client_id: str, symbol: str, side: str, quantity: float, price: float
    ) -> ExchangeOrder:
        """Places a limit order; fills what the fill model allows at once."""
        if self._config.latency_ms:
            await asyncio.sleep(self._config.latency_ms / 1000)
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
        ratio = 0.5 if fault == "partial_fill" else self._config.fill_ratio
        await self._book.run(lambda db: _received(db, client_id))
        order = await self._book.run(
            lambda db: self._place(db, client_id, symbol, side, quantity, price, ratio)
        )
        if fault == "timeout_after":
            raise OutcomeUnknown("timed out after the exchange accepted the order")
        return order

    def _place(
        self,
        db: sqlite3.Connection,
        client_id: str,
        symbol: str,
        side: str,
        quantity: float,
        price: float,
        ratio: float,
    ) -> ExchangeOrder:
        if db.execute("SELECT 1 FROM orders WHERE client_id = ?", (client_id,)).fetchone():
            raise OrderRejected("Duplicate order sent")
        base, _, quote = symbol.partition("/")
        reference = self._config.prices.get(base)
        if reference is None or quote != self._config.quote:
            raise OrderRejected(f"unknown symbol {symbol}")
        fee_rate = self._config.fee_rate
        balance = dict(db.execute("SELECT asset, free FROM balances").fetchall())
        if side == "BUY":
            hold_asset, hold = quote, quantity * price * (1 + fee_rate)
        else:
            hold_asset, hold = base, quantity
        if balance.get(hold_asset, 0.0) + 1e-9 < hold:
            raise InsufficientFunds(f"needs {hold} {hold_asset}")
        _move(db, hold_asset, -hold, +hold)
        seq = db.execute("SELECT count(*) FROM orders").fetchone()[0] + 1
        db.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 'open', ?)",
            (client_id, f"P{seq:08d}", symbol, side, quantity, price, seq),
        )
        self._fill(db, client_id, quantity * ratio)
        return _order(db, client_id)

    def _fill(self, db: sqlite3.Connection, client_id: str, amount: float) -> None:
        """Fills up to ``amount`` more of an open order, if its limit allows."""
        o = _order(db, client_id)
        base, _, quote = o.symbol.partition("/")
        reference = self._config.prices[base]
        slip = self._config.slippage_bps / 10_000
        fill_price = reference * (1 + slip) if o.side == "BUY" else reference * (1 - slip)
        crosses = fill_price <= o.price if o.side == "BUY" else fill_price >= o.price
        amount = min(amount, o.quantity - o.filled)
        if not crosses or amount <= 0:
            return
        fee_rate = self._config.fee_rate
        cost = amount * fill_price
        fee = cost * fee_rate
        if o.side == "BUY":
            held = amount * o.price * (1 + fee_rate)
            _move(db, quote, held - cost - fee, -held)
            _move(db, base, amount, 0)
        else:
            _move(db, base, 0, -amount)
            _move(db, quote, cost - fee, 0)
        filled = o.filled + amount
        average = (o.average_price * o.filled + fill_price * amount) / filled
        status = "closed" if filled >= o.quantity * (1 - 1e-12) else "open"
        db.execute(
            "UPDATE orders SET filled = ?, average_price = ?, fee = fee + ?, status = ? "
            "WHERE client_id = ?",
            (filled, average, fee, status, client_id),
        )

    async def fetch_order(self, client_id: str, symbol: str = "") -> ExchangeOrder:
        """The order with this client order id, or OrderNotFound."""
        return await self._book.run(lambda db: _order(db, client_id))

    async def cancel_order(self, client_id: str, symbol: str = "") -> ExchangeOrder:
        """Cancels what is left of an open order; the order as it ends up
        (a fill may win the race: the order is then closed, not canceled)."""
        race = self._take("fill_races_cancel")

        def cancel(db: sqlite3.Connection) -> ExchangeOrder:
            o = _order(db, client_id)
            if o.status != "open":
                return o
            if race:
                self._fill(db, client_id, o.quantity)
                o = _order(db, client_id)
                if o.status != "open":
                    return o
            base, _, quote = o.symbol.partition("/")
            left = o.quantity - o.filled
            if o.side == "BUY":
                held = left * o.price * (1 + self._config.fee_rate)
                _move(db, quote, held, -held)
            else:
                _move(db, base, left, -left)
            db.execute("UPDATE orders SET status = 'canceled' WHERE client_id = ?", (client_id,))
            return _order(db, client_id)

        return await self._book.run(cancel)

    async def orders(self, prefix: str, open_only: bool = False) -> list[ExchangeOrder]:
        """Orders whose client order id starts with ``prefix`` (ours)."""

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
                self._fill(db, client_id, float("inf"))

        await self._book.run(fill)


def _received(db: sqlite3.Connection, client_id: str) -> None:
    """Counts every create request that reached the exchange (duplicates
    included): how tests prove no client order id was sent twice."""
    db.execute(
        "INSERT INTO received VALUES (?, 1) "
        "ON CONFLICT (client_id) DO UPDATE SET count = count + 1",
        (client_id,),
    )


def _move(db: sqlite3.Connection, asset: str, free: float, locked: float) -> None:
    db.execute("INSERT OR IGNORE INTO balances VALUES (?, 0, 0)", (asset,))
    db.execute(
        "UPDATE balances SET free = free + ?, locked = locked + ? WHERE asset = ?",
        (free, locked, asset),
    )


def _order(db: sqlite3.Connection, client_id: str) -> ExchangeOrder:
    row = db.execute("SELECT * FROM orders WHERE client_id = ?", (client_id,)).fetchone()
    if row is None:
        raise OrderNotFound(f"no order {client_id}")
    return row_to_order(row)
