"""The paper exchange's own book: balances and orders in a SQLite file that
belongs to the "exchange", not to govex."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from govex_server.exchanges.base import ExchangeOrder

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (asset TEXT PRIMARY KEY, free REAL NOT NULL,
    locked REAL NOT NULL);
CREATE TABLE IF NOT EXISTS orders (client_id TEXT PRIMARY KEY, exchange_id TEXT NOT NULL,
    symbol TEXT NOT NULL, side TEXT NOT NULL, quantity REAL NOT NULL, price REAL NOT NULL,
    filled REAL NOT NULL, average_price REAL NOT NULL, fee REAL NOT NULL, status TEXT NOT NULL,
    seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS received (client_id TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""


class PaperBook:
    """Thread-confined sqlite3 access, run off the event loop."""

    def __init__(self, path: str, starting_balances: Mapping[str, float]) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: in WAL mode a commit survives a crash of any process (the
        # paper exchange must outlive our SIGKILLs, which the crash tests
        # check), only not a power cut. That is this simulated exchange's
        # durability; govex's own store keeps FULL.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if self._db.execute("SELECT count(*) FROM balances").fetchone()[0] == 0:
            self._db.executemany(
                "INSERT INTO balances VALUES (?, ?, 0)", list(starting_balances.items())
            )

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``work`` in one transaction in a worker thread."""

        def transaction() -> T:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result

        return await asyncio.to_thread(transaction)

    def close(self) -> None:
        """Closes the file."""
        self._db.close()


def row_to_order(row: tuple[Any, ...]) -> ExchangeOrder:
    """An ``orders`` row as an ExchangeOrder."""
    (client_id, exchange_id, symbol, side, quantity, price, filled, avg, fee, status) = row[:10]
    return ExchangeOrder(
        str(client_id),
        str(exchange_id),
        str(symbol),
        str(side),
        float(quantity),
        float(price),
        float(filled),
        float(avg),
        float(fee),
        str(status),
    )
