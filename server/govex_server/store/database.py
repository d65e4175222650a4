"""Engines, transactions and the unit of work.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``: a
committed plan transition or audit record survives a power cut, which is worth
the extra fsync on a control plane that writes little. SQLite allows one writer
at a time, so write transactions in this process queue on an asyncio lock
instead of spinning on ``database is locked``; ``busy_timeout`` covers other
processes (``govex-server migrate``). PostgreSQL is the scale-out store:
concurrent writers are kept honest by conditional updates on ``version``,
row locks, and the single-active-plan unique index.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from govex_server.domain.errors import Category, GovexError
from govex_server.domain.events import DomainEvent
from govex_server.store.execution_repositories import (
    DailyNotionalRepository,
    ExecutionRepository,
    OrderRepository,
)
from govex_server.store.repositories import (
    AuditRepository,
    EventEncoder,
    EventRepository,
    FreezeRepository,
    IdempotencyRepository,
    ModeRepository,
    PlanRepository,
    PolicyStateRepository,
    SignalRepository,
)


def normalise_url(url: str) -> str:
    """Picks the async driver: ``sqlite:///x.db`` -> aiosqlite,
    ``postgresql://`` -> asyncpg. Other backends are refused."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` with the connection settings we rely on."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # A transaction abandoned mid-way (a cancelled task, a dead replica) must
    # not hold its row locks forever: PostgreSQL ends idle transactions after
    # 15 s, and a statement gives up waiting for a lock after 20 s (an error,
    # not a hang).
    return create_async_engine(
        url,
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

    def __init__(self, conn: AsyncConnection, encode_event: EventEncoder) -> None:
        self.conn = conn
        self.plans = PlanRepository(conn)
        self.modes = ModeRepository(conn)
        self.audit = AuditRepository(conn)
        self.idempotency = IdempotencyRepository(conn)
        self.freezes = FreezeRepository(conn)
        self.events = EventRepository(conn, encode_event)
        self.signals = SignalRepository(conn)
        self.policy = PolicyStateRepository(conn)
        self.executions = ExecutionRepository(conn)
        self.orders = OrderRepository(conn)
        self.daily_notional = DailyNotionalRepository(conn)


def _no_encoder(event: DomainEvent, sequence: int) -> bytes:
    raise RuntimeError("this Store was built without an event encoder; it cannot write events")


class Store:
    """Hands out units of work: ``read()`` for queries, ``write()`` for a
    transaction that commits on success and rolls back on any exception."""

    def __init__(self, engine: AsyncEngine, encode_event: EventEncoder = _no_encoder) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_lock = asyncio.Lock()
        self._encode_event = encode_event
        self._change_listeners: list[tuple[frozenset[str] | None, Callable[[], None]]] = []

    def on_change(self, listener: Callable[[], None], kinds: frozenset[str] | None = None) -> None:
        """Calls ``listener`` after every committed transaction that recorded
        an event (of one of ``kinds``, when given), and whenever ``changed()``
        is called for another replica's writes."""
        self._change_listeners.append((kinds, listener))

    def changed(self, kinds: frozenset[str] | None = None) -> None:
        """Tells the listeners that the stored state changed: events of
        ``kinds`` were recorded (None: unknown, every listener hears it)."""
        for wanted, listener in self._change_listeners:
            if kinds is None or wanted is None or not wanted.isdisjoint(kinds):
                listener()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[UnitOfWork]:
        """A read-only unit of work (its transaction is rolled back)."""
        async with self.engine.connect() as conn:
            yield UnitOfWork(conn, self._encode_event)
            await conn.rollback()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[UnitOfWork]:
        """A write transaction: everything inside commits together or not at all.

        A unique-constraint violation (a concurrent twin won the race) is
        ABORTED CONFLICT: the caller re-reads and retries."""
        uow: UnitOfWork | None = None
        try:
            if self.is_sqlite:
                async with self._write_lock, self.engine.begin() as conn:
                    uow = UnitOfWork(conn, self._encode_event)
                    yield uow
            else:
                async with self.engine.begin() as conn:
                    uow = UnitOfWork(conn, self._encode_event)
                    yield uow
        except IntegrityError as exc:
            raise GovexError(
                Category.ABORTED,
                "CONFLICT",
                "a concurrent request changed the same data first; read again and retry",
            ) from exc
        if uow is not None and uow.events.kinds:
            self.changed(frozenset(uow.events.kinds))

    async def close(self) -> None:
        """Closes every pooled connection."""
        await self.engine.dispose()
