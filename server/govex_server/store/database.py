"""The store: engines, the unit of work, and how units are run.

A unit of work is a plain function of a ``UnitOfWork``; ``Store.write(unit)``
runs it in one transaction and returns its result once that transaction has
committed, ``Store.read(unit)`` runs it on a read-only snapshot. Units are
synchronous on purpose: no await between two statements, so a transaction is
as short as the SQL in it.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``: a
committed plan transition or audit record survives a power cut. One writer
thread group-commits the queued units (group_commit.py), so the fsync is paid
once per batch, not once per request; reads run on their own connections in a
small thread pool and never wait for the writer (WAL). PostgreSQL is the
scale-out store: units run on a pooled asyncpg connection through
SQLAlchemy's ``run_sync`` bridge, concurrent writers are kept honest by
conditional updates on ``version``, row locks and unique indexes, and one
NOTIFY per transaction wakes the other replicas.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from govex_server.domain import money
from govex_server.domain.errors import Category, GovexError
from govex_server.domain.events import DomainEvent
from govex_server.store import in_flight
from govex_server.store.audit_repositories import (
    AuditRepository,
    HeadGuess,
    IdempotencyRepository,
)
from govex_server.store.batch_ledger import BatchLedger
from govex_server.store.daily_notional import DailyNotionalRepository
from govex_server.store.execution_repositories import ExecutionRepository, OrderRepository
from govex_server.store.group_commit import GroupCommitWriter
from govex_server.store.lease_repositories import LeaseRepository
from govex_server.store.policy_repositories import PolicyStateRepository, SignalRepository
from govex_server.store.repositories import (
    EventEncoder,
    EventRepository,
    FreezeRepository,
    ModeRepository,
    PlanRepository,
    StoredEvent,
)

if TYPE_CHECKING:
    # Imported when PostgreSQL is used: it pulls in the ORM (about 60 ms of
    # start-up that a SQLite server does not need).
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
Unit = Callable[["UnitOfWork"], T]
READ_THREADS = 4


def normalise_url(url: str) -> str:
    """Picks the driver: ``sqlite:///x.db`` -> the standard library's
    sqlite3, ``postgresql://`` -> asyncpg. Other backends are refused."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("sqlite needs a file: the writer and the readers share it")
        parsed = parsed.set(drivername="sqlite+pysqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str, begin: str, **kwargs: Any) -> Engine:
    """A sqlite3 engine whose transactions we begin ourselves: pysqlite's own
    implicit BEGIN would break SAVEPOINTs and defer the write lock."""
    engine = create_sync_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced at every commit, so a committed batch
        # survives a power cut (NORMAL would only survive a process crash).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # Exact sums of decimal text inside SQLite (its own + goes through
        # binary floats): one statement, no read back into Python first.
        money.register_sqlite_add(dbapi_conn)
        in_flight.register(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def create_engine(url: str) -> AsyncEngine:
    """The asyncpg engine for a PostgreSQL ``url``.

    A transaction abandoned mid-way (a dead replica) must not hold its row
    locks forever: PostgreSQL ends idle transactions after 15 s, and a
    statement gives up waiting for a lock after 20 s (an error, not a hang)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(
        normalise_url(url),
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args={
            "server_settings": {
                "idle_in_transaction_session_timeout": "15000",
                "lock_timeout": "20000",
            }
        },
    )


class UnitOfWork:
    """One transaction and the repositories that work inside it."""

    def __init__(
        self,
        conn: Connection,
        encode_event: EventEncoder,
        audit_head: HeadGuess | None = None,
        *,
        deferred: bool = False,
    ) -> None:
        self.conn = conn
        self.plans = PlanRepository(conn)
        self.modes = ModeRepository(conn)
        # Deferred (the SQLite writer): audit records and events are chained
        # and numbered into the batch's ledger (batch_ledger.py).
        self.audit = AuditRepository(conn, audit_head, [] if deferred else None)
        self.idempotency = IdempotencyRepository(conn)
        self.freezes = FreezeRepository(conn)
        self.events = EventRepository(conn, encode_event)
        self.signals = SignalRepository(conn)
        self.policy = PolicyStateRepository(conn)
        self.executions = ExecutionRepository(conn)
        self.orders = OrderRepository(conn)
        self.daily_notional = DailyNotionalRepository(conn)
        self.leases = LeaseRepository(conn)
        # Executions whose lease this unit has checked (services/leases.py).
        self.fenced: set[str] = set()


def _outlived(task: asyncio.Future[Any]) -> None:
    """Takes the error of a transaction whose caller was cancelled (it was
    rolled back; the caller is gone): not "exception never retrieved"."""
    if not task.cancelled():
        task.exception()


def _no_encoder(event: DomainEvent, sequence: int) -> bytes:
    raise RuntimeError("this Store was built without an event encoder; it cannot write events")


def _conflict(exc: IntegrityError) -> GovexError:
    """A unique-constraint violation: a concurrent twin won the race."""
    return GovexError(
        Category.ABORTED,
        "CONFLICT",
        "a concurrent request changed the same data first; read again and retry",
    )


class Store:
    """Runs units of work: ``read(unit)`` on a snapshot, ``write(unit)`` in a
    transaction that commits on success and rolls back on any exception."""

    def __init__(self, url: str, encode_event: EventEncoder = _no_encoder) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._encode_event = encode_event
        self._audit_head = HeadGuess()
        self._change_listeners: list[tuple[frozenset[str] | None, Callable[[], None]]] = []
        self._event_listeners: list[Callable[[list[StoredEvent]], None]] = []
        self.engine: AsyncEngine | None = None
        # PostgreSQL transactions that outlive a cancelled caller; close()
        # lets them end before the pool goes.
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._writer: GroupCommitWriter | None = None
        self._observe: Callable[[str, float, int], None] | None = None
        if self.is_sqlite:
            self.sync_engine = _sqlite_engine(self.url, "BEGIN", pool_size=READ_THREADS)
            writer_engine = _sqlite_engine(self.url, "BEGIN IMMEDIATE", pool_size=1)
            self._writer = GroupCommitWriter(writer_engine, self._begin_batch, self._committed)
            self._writer_engine = writer_engine
            self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="govex-sqlite-read")
        else:
            self.engine = create_engine(url)

    # ---------------------------------------------------------------- events

    def on_change(self, listener: Callable[[], None], kinds: frozenset[str] | None = None) -> None:
        """Calls ``listener`` after every committed transaction that recorded
        an event (of one of ``kinds``, when given), and whenever ``changed()``
        is called for another replica's writes."""
        self._change_listeners.append((kinds, listener))

    def on_transaction(self, observe: Callable[[str, float, int], None]) -> None:
        """Tells ``observe`` the dialect, seconds and units of every write
        transaction (on SQLite from the writer thread, once per batch)."""
        self._observe = observe
        if self._writer is not None:
            self._writer.observe = lambda seconds, units: observe("sqlite", seconds, units)

    def on_events(self, listener: Callable[[list[StoredEvent]], None]) -> None:
        """Hands ``listener`` the events of every committed transaction of
        this process before the writer hears back: on SQLite in sequence order
        (one writer), on PostgreSQL each transaction's in order but concurrent
        transactions as their commits return (the event bus re-orders)."""
        self._event_listeners.append(listener)

    def changed(self, kinds: frozenset[str] | None = None) -> None:
        """Tells the listeners that the stored state changed: events of
        ``kinds`` were recorded (None: unknown, every listener hears it)."""
        for wanted, listener in self._change_listeners:
            if kinds is None or wanted is None or not wanted.isdisjoint(kinds):
                listener()

    def _committed(self, events: list[StoredEvent]) -> None:
        for listener in self._event_listeners:
            listener(events)
        self.changed(frozenset(e.kind for e in events))

    async def change_stamp(self) -> int:
        """The newest event sequence: every committed change another replica
        must see records an event, and so moves it."""
        return await self.read(lambda uow: uow.events.newest())

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self.is_sqlite else "postgresql"

    @property
    def group_commit(self) -> GroupCommitWriter | None:
        """The SQLite writer (its batch and unit counters), None on PostgreSQL."""
        return self._writer

    # ----------------------------------------------------------------- units

    def _bind(self, unit: Unit[T]) -> Callable[[Connection], tuple[T, list[StoredEvent]]]:
        def run(conn: Connection) -> tuple[T, list[StoredEvent]]:
            uow = UnitOfWork(conn, self._encode_event, self._audit_head)
            try:
                result = unit(uow)
                # The event counter last: its row lock is held only to the commit.
                uow.events.flush()
            except IntegrityError as exc:
                raise _conflict(exc) from exc
            appended = uow.events.appended
            if appended and conn.dialect.name == "postgresql":
                # One notification per transaction, delivered at commit:
                # wakes the other replicas' event buses.
                conn.execute(
                    text("SELECT pg_notify('govex_events', :sequence)"),
                    {"sequence": str(appended[-1].sequence)},
                )
            return result, appended

        return run

    def _batched(self, unit: Unit[T]) -> Callable[[Connection, BatchLedger], T]:
        """``unit`` for the SQLite writer: its audit records and events go
        into the batch's ledger (chained and numbered in its savepoint)."""

        def run(conn: Connection, ledger: BatchLedger) -> T:
            uow = UnitOfWork(conn, self._encode_event, self._audit_head, deferred=True)
            try:
                result = unit(uow)
            except IntegrityError as exc:
                raise _conflict(exc) from exc
            ledger.record(uow.audit.take_deferred(), uow.events.take_pending())
            return result

        return run

    def _begin_batch(self, conn: Connection) -> BatchLedger:
        return BatchLedger(conn, self._encode_event)

    async def read(self, unit: Unit[T]) -> T:
        """Runs ``unit`` on a read-only snapshot (its transaction is rolled back)."""
        run = self._bind(unit)
        if self.is_sqlite:

            def on_thread() -> T:
                with self.sync_engine.connect() as conn, conn.begin() as txn:
                    result = run(conn)[0]
                    txn.rollback()
                    return result

            return await asyncio.get_running_loop().run_in_executor(self._readers, on_thread)
        assert self.engine is not None
        async with self.engine.connect() as conn:
            result = (await conn.run_sync(run))[0]
            await conn.rollback()
            return result

    async def write(self, unit: Unit[T]) -> T:
        """Runs ``unit`` in a transaction and returns its result once that
        transaction has committed. Everything inside commits together or not
        at all; a unique-constraint violation is ABORTED CONFLICT (the caller
        re-reads and retries). A cancelled caller does not interrupt a
        transaction that has begun: it commits or rolls back whole."""
        if self._writer is not None:
            result: T = await self._writer.submit(self._batched(unit))
            return result
        run = self._bind(unit)
        task = asyncio.ensure_future(self._write_postgres(run))
        self._in_flight.add(task)
        task.add_done_callback(_outlived)
        task.add_done_callback(self._in_flight.discard)
        return await asyncio.shield(task)

    async def _write_postgres(self, run: Callable[[Connection], tuple[T, list[StoredEvent]]]) -> T:
        assert self.engine is not None
        started = time.perf_counter()
        try:
            async with self.engine.begin() as conn:
                result, events = await conn.run_sync(run)
        except IntegrityError as exc:
            raise _conflict(exc) from exc
        finally:
            if self._observe is not None:
                self._observe("postgresql", time.perf_counter() - started, 1)
        if events:
            self._committed(events)
        return result

    async def close(self) -> None:
        """Finishes queued writes and closes every connection."""
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.stop)
            self._readers.shutdown(wait=True)
            self.sync_engine.dispose()
            self._writer_engine.dispose()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=10)
        if self.engine is not None:
            await self.engine.dispose()
