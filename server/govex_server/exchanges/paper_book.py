"""The paper exchange's own book: balances and orders in a SQLite file that
belongs to the "exchange", not to govex. Amounts are stored as decimal text
(columns without a numeric affinity), so that they come back exactly."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from govex_server.domain import money
from govex_server.exchanges.base import ExchangeOrder

T = TypeVar("T")

# Version 2: amounts as TEXT (version 1 had REAL columns, binary fractions).
_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (asset TEXT PRIMARY KEY, free TEXT NOT NULL,
    locked TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (client_id TEXT PRIMARY KEY, exchange_id TEXT NOT NULL,
    symbol TEXT NOT NULL, side TEXT NOT NULL, quantity TEXT NOT NULL, price TEXT NOT NULL,
    filled TEXT NOT NULL, average_price TEXT NOT NULL, fee TEXT NOT NULL, status TEXT NOT NULL,
    seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS received (client_id TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""
_AMOUNTS = {
    "balances": ("free", "locked"),
    "orders": ("quantity", "price", "filled", "average_price", "fee"),
}


def _upgrade(db: sqlite3.Connection) -> None:
    """A version-1 book (REAL columns) becomes version 2 in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    for table in _AMOUNTS:
        db.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
    for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
        db.execute(statement)
    for table, columns in _AMOUNTS.items():
        names = [r[1] for r in db.execute(f"PRAGMA table_info({table}_v1)")]
        for row in db.execute(f"SELECT * FROM {table}_v1").fetchall():
            values = [
                money.text(money.exact(v)) if name in columns else v
                for name, v in zip(names, row, strict=True)
            ]
            marks = ", ".join("?" * len(values))
            db.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", values)
        db.execute(f"DROP TABLE {table}_v1")
    db.execute(f"PRAGMA user_version = {_VERSION}")
    db.execute("COMMIT")


class PaperBook:
    """Thread-confined sqlite3 access, run off the event loop."""

    def __init__(self, path: str, starting_balances: Mapping[str, Decimal]) -> None:
        self._lock = threading.Lock()
        self._closed = False
        # CPU seconds of the book's transactions (thread time: a wait for the
        # GIL while govex runs is not counted): the benchmarks report this
        # simulated exchange's own cost apart.
        self.busy_seconds = 0.0
        # Wall seconds the book was held (its lock, one transaction at a
        # time): this simulated exchange serves one order at a time, so a
        # run can go no faster than its transactions take end to end, GIL
        # waits included. The execution benchmark prints this ceiling.
        self.held_seconds = 0.0
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: in WAL mode a commit survives a crash of any process (the
        # paper exchange must outlive our SIGKILLs, which the crash tests
        # check), only not a power cut. That is this simulated exchange's
        # durability; govex's own store keeps FULL.
        self._db.execute("PRAGMA synchronous=NORMAL")
        money.register_sqlite_add(self._db)
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'balances'"
        ).fetchone()
        if exists and version < _VERSION:
            _upgrade(self._db)
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {_VERSION}")
        if self._db.execute("SELECT count(*) FROM balances").fetchone()[0] == 0:
            self._db.executemany(
                "INSERT INTO balances VALUES (?, ?, '0')",
                [(asset, money.text(v)) for asset, v in starting_balances.items()],
            )

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``work`` in one transaction in a worker thread."""

        def transaction() -> T:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the paper book is closed (the server is stopping)")
                started, entered = time.thread_time(), time.perf_counter()
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(self._db)
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
                    self._db.execute("COMMIT")
                    return result
                finally:
                    self.busy_seconds += time.thread_time() - started
                    self.held_seconds += time.perf_counter() - entered

        return await asyncio.to_thread(transaction)

    def close(self) -> None:
        """Closes the file once the transaction in flight (if any) has ended.

        A caller cancelled at shutdown leaves its worker thread running; closing
        the connection under that thread crashes the process (a segfault in
        sqlite3, seen in CI), so close waits for the lock like a transaction."""
        with self._lock:
            self._closed = True
            self._db.close()


def row_to_order(row: tuple[Any, ...]) -> ExchangeOrder:
    """An ``orders`` row as an ExchangeOrder."""
    (client_id, exchange_id, symbol, side, quantity, price, filled, avg, fee, status) = row[:10]
    return ExchangeOrder(
        str(client_id),
        str(exchange_id),
        str(symbol),
        str(side),
        money.exact(quantity),
        money.exact(price),
        money.exact(filled),
        money.exact(avg),
        money.exact(fee),
        str(status),
    )
