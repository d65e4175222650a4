"""Two ``govex-server serve`` replicas on one PostgreSQL database and one
paper book, as child processes the tests kill, pause and restart; and what
the tests read of their shared state (the store's leases, the book)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from govex.execution.v1 import execution_service_pb2 as exe
from govex.execution.v1 import execution_service_pb2_grpc
from govex.governance.v1 import governance_service_pb2_grpc
from govex_server.domain import money
from govex_server.domain.execution.orders import OrderState, client_order_id
from govex_server.domain.execution.records import ExecutionState
from govex_server.domain.ids import UlidFactory
from govex_server.store.database import Store, UnitOfWork
from tests.integration.test_crash_safety import until_up, write_paper_config
from tests.postgres import create_database
from tests.server_process import ServerProcess
from tests.support import md

LEASE_SECONDS = 2.0
STEP = Decimal("0.00001")  # the paper account's amount step
MODES = ("normal", "aggressive", "slow")
# Weights of the plan: 25 assets of 3.2%; a day's cap of half the
# portfolio lets the first 15 legs go at once (the rest wait for tomorrow).
WEIGHT_PERCENT = 3.2
# A dead owner is replaced within its lease plus one heartbeat (a third of
# it); the slack covers the claim's own write and a loaded machine.
TAKEOVER_BOUND = LEASE_SECONDS + LEASE_SECONDS / 3 + 2.0


@dataclass(frozen=True)
class Lease:
    owner: str
    generation: int
    state: str

    @property
    def pid(self) -> int:
        """The owner's process id (a replica id is host:pid:random)."""
        return int(self.owner.split(":")[1]) if self.owner else 0


class Replicas:
    """Replicas ``a`` and ``b`` sharing ``database_url`` and ``book``."""

    def __init__(
        self,
        tmp: Path,
        database_url: str,
        latency_ms: int,
        usdt: int = 1_000_000,
        env: dict[str, str] | None = None,
    ) -> None:
        write_paper_config(tmp / "paper.toml", latency_ms, usdt)
        self.tmp = tmp
        self.database_url = database_url
        self.book = tmp / "book.db"
        # Half the portfolio a day from the first signals (no smoothing),
        # ramps of an hour: each leg of the day is one slice due at once,
        # sent as fast as the paper latency lets it.
        (tmp / "govex.toml").write_text(
            "[policy]\nsmoothing = 0.0\nmax_step = 0.5\n"
            + "".join(f"{mode}_cap = 0.5\n{mode}_ramp_hours = 1.0\n" for mode in MODES)
        )
        env = {
            **(env or {}),
            "GOVEX_CONFIG_FILE": str(tmp / "govex.toml"),
            "GOVEX_PAPER_EXCHANGE_FILE": str(tmp / "paper.toml"),
            "GOVEX_PAPER_BOOK_FILE": str(self.book),
            "GOVEX_LEASE_SECONDS": str(LEASE_SECONDS),
            "GOVEX_LOG_FORMAT": "text",
        }
        self.a = ServerProcess(tmp, env, database_url=database_url, name="a")
        self.b = ServerProcess(tmp, env, database_url=database_url, name="b")

    def both(self) -> tuple[ServerProcess, ServerProcess]:
        return self.a, self.b

    def by_pid(self, pid: int) -> ServerProcess:
        return next(s for s in self.both() if s.process and s.process.pid == pid)

    def other(self, server: ServerProcess) -> ServerProcess:
        return self.b if server is self.a else self.a

    def stop(self) -> None:
        for server in self.both():
            if server.process is not None and server.process.poll() is None:
                server.resume()
            server.stop()

    # --------------------------------------------------------------- reads

    async def leases(self) -> dict[str, Lease]:
        """Every execution's lease, as the store has it."""
        rows = await self._query("SELECT id, owner, lease_generation, state FROM executions")
        return {r[0]: Lease(r[1], r[2], r[3]) for r in rows}

    async def stored_orders(self) -> dict[str, tuple[str, str, Any]]:
        """client order id -> (state, filled, send time), from the store."""
        rows = await self._query("SELECT client_order_id, state, filled, sent_at FROM orders")
        return {r[0]: (r[1], str(r[2]), r[3]) for r in rows}

    async def _query(self, sql: str) -> list[Any]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    def book_orders(self) -> dict[str, tuple[str, str]]:
        """client order id -> (status, filled), from the paper book."""
        with sqlite3.connect(self.book) as book:
            rows = book.execute("SELECT client_id, status, filled FROM orders").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def received(self) -> dict[str, int]:
        """How many create requests reached the book, per client order id."""
        with sqlite3.connect(self.book) as book:
            return dict(book.execute("SELECT client_id, count FROM received").fetchall())

    # -------------------------------------------------------------- checks

    def assert_nothing_sent_twice(self) -> None:
        twice = {cid: n for cid, n in self.received().items() if n > 1}
        assert not twice, f"client order ids sent twice: {twice}"

    async def assert_store_agrees_with_book(self, settled: bool) -> None:
        """Every order on the exchange is known to the store, which never
        calls it unsent (PENDING) or refused (REJECTED); settled (nothing
        in flight), both say the same of each."""
        stored = await self.stored_orders()
        statuses = {"closed": "FILLED", "canceled": "CANCELLED", "open": "OPEN"}
        for cid, (status, filled) in self.book_orders().items():
            assert cid in stored, f"{cid} is on the exchange, unknown to the store"
            state, stored_filled, _ = stored[cid]
            assert state not in ("PENDING", "REJECTED"), f"{cid}: store {state}, book {status}"
            if settled:
                want = statuses.get(status, status)
                if want == "OPEN" and float(filled) > 0:
                    want = "PARTIALLY_FILLED"
                assert state == want, f"{cid}: store {state}, book {status}"
                assert float(stored_filled) == float(filled), cid

    async def assert_all_settled_and_agreed(self) -> None:
        """The checks after every run: nothing sent twice, nothing left
        unresolved, store and book say the same of every order."""
        self.assert_nothing_sent_twice()
        await self.assert_settled()
        await self.assert_store_agrees_with_book(settled=True)

    async def assert_settled(self) -> None:
        stored = await self.stored_orders()
        live = {c: s for c, (s, _, _) in stored.items() if s in ("SUBMITTED", "UNKNOWN")}
        assert not live, f"orders left unresolved: {live}"


def replicas_on(tmp: Path, pg_base_url: str, latency_ms: int, **options: Any) -> Replicas:
    database = create_database(pg_base_url, f"r_{uuid.uuid4().hex[:16]}")
    return Replicas(tmp, database, latency_ms, **options)


@asynccontextmanager
async def stubs(server: ServerProcess) -> AsyncIterator[tuple[Any, Any]]:
    """Governance and execution stubs of ``server``, once it serves."""
    async with grpc.aio.insecure_channel(server.address) as channel:
        g = governance_service_pb2_grpc.GovernanceServiceStub(channel)
        await until_up(g)
        # Up is not yet SERVING: executions start once reconciliation is done.
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{server.name} never said SERVING")
        yield g, execution_service_pb2_grpc.ExecutionServiceStub(channel)


async def until(condition: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    """Polls ``condition`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)


async def state_of(x: Any, name: str) -> int:
    execution = await x.GetExecution(
        exe.GetExecutionRequest(name=name), metadata=md("victor"), timeout=10
    )
    return int(execution.state)


async def clone_execution(
    database_url: str, execution_id: str, copies: int, scale: Decimal = Decimal(1)
) -> list[str]:
    """``copies`` running executions like ``execution_id`` (a running one or
    a dry run), of other plans, nothing sent yet, owned by nobody, each order
    ``scale`` times as large, written into the store. (The account's daily
    cap is shared by all its executions: many copies need a small scale to
    trade today.)"""
    store = Store(database_url)
    ids = UlidFactory()
    now = datetime.now(UTC)

    def unit(uow: UnitOfWork) -> list[str]:
        original = uow.executions.get(execution_id)
        assert original is not None
        orders = uow.orders.for_execution(execution_id)
        made = []
        for _ in range(copies):
            copy = replace(
                original,
                id=ids.new(now),
                plan_id=ids.new(now),
                version=1,
                state=ExecutionState.RUNNING,
                state_reason="",
                end_time=None,
                dry_run=False,
            )
            uow.executions.add(copy)
            for o in orders:
                uow.orders.add(
                    replace(
                        o,
                        id=ids.new(now),
                        execution_id=copy.id,
                        client_order_id=client_order_id(copy.id, o.leg_index, o.slice_index, 0),
                        attempt=0,
                        quantity=money.down_to(money.mul(o.quantity, scale), STEP),
                        state=OrderState.PENDING,
                        state_reason="",
                        send_time=None,
                        exchange_order_id="",
                        filled=money.ZERO,
                        average_price=money.ZERO,
                        fee=money.ZERO,
                        safety={},
                    )
                )
            made.append(copy.id)
        return made

    try:
        return await store.write(unit)
    finally:
        await store.close()
