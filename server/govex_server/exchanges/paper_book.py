"""The paper exchange's own book: balances and orders in a SQLite file that
belongs to the "exchange", not to govex. Amounts are stored as decimal text
(columns without a numeric affinity), so that they come back exactly."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


# The most requests one transaction of the book serves.
MAX_BATCH = 64


@dataclass(eq=False)
class _Request:
    work: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


class PaperBook:
    """The book's one connection, confined to the book's own thread.

    Requests queue for that thread, which serves every request waiting
    when it is free in one transaction, each request in its own SAVEPOINT
    (one that raises is rolled back alone, and its caller gets the error),
    and answers its callers once that transaction committed. One thread
    hand-off per batch, not per request: a thread-pool hop per order cost
    the event loop a quarter of its time in the execution benchmark, and
    the book's thread waited for the GIL around every BEGIN and COMMIT."""

    def __init__(self, path: str, starting_balances: Mapping[str, Decimal]) -> None:
        # Guards ``_closed`` with the queue: no request is queued behind
        # the thread's stop (its caller would wait forever).
        self._lock = threading.Lock()
        self._closed = False
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # CPU seconds of the book's transactions (thread time: a wait for the
        # GIL while govex runs is not counted): the benchmarks report this
        # simulated exchange's own cost apart.
        self.busy_seconds = 0.0
        # Wall seconds the book was busy (one transaction at a time, GIL
        # waits included): a run can go no faster than the book serves its
        # orders. The execution benchmark prints this ceiling.
        self.held_seconds = 0.0
        # Transactions committed or rolled back (tests see the batching).
        self.transactions = 0
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
        """Runs ``work`` in the book's thread, inside a transaction, and
        returns its result once that transaction committed. A cancelled
        caller does not stop the work: once queued it runs."""
        loop = asyncio.get_running_loop()
        request = _Request(work, loop, loop.create_future())
        with self._lock:
            if self._closed:
                raise RuntimeError("the paper book is closed (the server is stopping)")
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="paper-book", daemon=True)
                self._thread.start()
            self._queue.put(request)
        result: T = await request.future
        return result

    def close(self) -> None:
        """Closes the file once the requests queued (and the transaction in
        flight) have been served: closing the connection under a running
        statement crashes the process (a segfault in sqlite3, seen in CI)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None:
            thread.join()
        self._db.close()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._transaction(batch)
            if stop:
                return

    def _transaction(self, batch: list[_Request]) -> None:
        started, entered = time.thread_time(), time.perf_counter()
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            for request in batch:
                db.execute("SAVEPOINT request")
                try:
                    request.result = request.work(db)
                except BaseException as exc:  # the request's own error, for its caller
                    db.execute("ROLLBACK TO request")
                    request.error = exc
                db.execute("RELEASE request")
            db.execute("COMMIT")
        except Exception as exc:
            # BEGIN or COMMIT failed (the file locked by another process
            # past the timeout, a full disk): nothing of the batch is kept.
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            for request in batch:
                request.error = request.error or exc
        finally:
            self.transactions += 1
            self.busy_seconds += time.thread_time() - started
            self.held_seconds += time.perf_counter() - entered
        for loop in {r.loop for r in batch}:
            # RuntimeError: that loop is closed, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_answer, [r for r in batch if r.loop is loop])


def _answer(requests: list[_Request]) -> None:
    for request in requests:
        if request.future.done():  # its caller was cancelled
            continue
        if request.error is not None:
            request.future.set_exception(request.error)
        else:
            request.future.set_result(request.result)


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
