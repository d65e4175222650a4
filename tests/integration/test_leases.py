"""Execution leases on a real store: one claim wins, a lease taken over
fences its old owner's writes, the send deadline runs on the owner's own
monotonic clock, a release hands over at once; SQLite (one process) claims
everything at start."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from govex_server.domain.clock import ManualClock
from govex_server.domain.execution.leases import LeaseTerms
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import ExecutionState
from govex_server.domain.execution.safety import Market
from govex_server.exchanges.base import Balance, ExchangeOrder
from govex_server.exchanges.paper import PaperExchange
from govex_server.services.leases import LeaseLost, Leases
from govex_server.store.database import Store, UnitOfWork
from govex_server.store.migrate import migrate
from tests.bench.engine_rig import add_executions, rig
from tests.integration.freeze_helpers import wait_for
from tests.postgres import create_database

TERMS = LeaseTerms(10.0)


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pg_stores(pg_base_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two replicas' stores on one fresh PostgreSQL database."""
    url = create_database(pg_base_url, f"l_{uuid.uuid4().hex[:16]}")
    first, second = Store(url), Store(url)
    await migrate(first)
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    one = Store(database_url)
    await migrate(one)
    yield one
    await one.close()


def touch(leases: Leases, execution_id: str) -> Callable[[UnitOfWork], None]:
    """A fenced write (what every order change of a runner does)."""

    def unit(uow: UnitOfWork) -> None:
        leases.fence_in(uow, execution_id)

    return unit


@pytest.mark.postgres
async def test_two_replicas_claiming_at_once_get_each_execution_once(
    pg_stores: tuple[Store, Store],
) -> None:
    first, second = pg_stores
    ids = await add_executions(first, 5, 1, 1)
    x = Leases(first, ManualClock(), TERMS, "x:1:a")
    y = Leases(second, ManualClock(), TERMS, "y:2:b")
    for _ in range(3):  # claims again and again: what is held stays held
        await asyncio.gather(x.claim(), y.claim())
    assert sorted(x.held + y.held) == sorted(ids)
    assert not set(x.held) & set(y.held)
    generations = await first.read(lambda uow: uow.leases.leases_of(ids))
    assert {g for _, g, _ in generations.values()} == {1}


async def test_a_claim_made_on_a_stale_read_loses(store: Store) -> None:
    """Two replicas read the same unowned execution and both claim it: the
    second claim's generation no longer matches (on PostgreSQL it waits for
    the first's row lock, then finds the generation moved)."""
    [execution_id] = await add_executions(store, 1, 1, 1)
    now = ManualClock().now()
    read = await store.read(lambda uow: uow.leases.claimable("x:1:a", now, False))
    assert read == [(execution_id, 0, "")]
    expires = TERMS.expires(now)
    first = await store.write(lambda uow: uow.leases.claim(execution_id, 0, "x:1:a", expires))
    second = await store.write(lambda uow: uow.leases.claim(execution_id, 0, "y:2:b", expires))
    assert (first, second) == (True, False)
    assert await store.read(lambda uow: uow.leases.holds(execution_id, "x:1:a", 1))


@pytest.mark.postgres
async def test_a_lease_taken_over_fences_its_old_owner(pg_stores: tuple[Store, Store]) -> None:
    first, second = pg_stores
    [execution_id] = await add_executions(first, 1, 1, 1)
    x_clock = ManualClock()
    x = Leases(first, x_clock, TERMS, "x:1:a")
    [claim] = await x.claim()
    await first.write(touch(x, execution_id))  # the owner writes

    # Not before the lease expires...
    y_clock = ManualClock(x_clock.now() + timedelta(seconds=9))
    y_monotonic = Monotonic()
    y = Leases(second, y_clock, TERMS, "y:2:b", y_monotonic)
    assert await y.claim() == []
    # ...but after it: a takeover, told as one.
    y_clock.advance(timedelta(seconds=2))
    [taken] = await y.claim()
    assert (taken.previous_owner, taken.generation) == ("x:1:a", claim.generation + 1)
    # x's last sends may still be on their way: for the exchange's receive
    # window, an order of x's not found is not yet lost.
    assert x.in_flight_until(execution_id, 5.0) is None  # x claimed it first
    assert y.in_flight_until(execution_id, 5.0) == y_monotonic.now + 5.0
    y_monotonic.now += 5.0
    assert y.in_flight_until(execution_id, 5.0) is None
    with pytest.raises(LeaseLost):
        await first.write(touch(x, execution_id))
    await second.write(touch(y, execution_id))
    assert await x.renew() == [execution_id]
    assert not x.holds(execution_id) and x.lost == 1


async def test_the_owner_stops_calling_the_exchange_at_its_send_deadline(store: Store) -> None:
    [execution_id] = await add_executions(store, 1, 1, 1)
    monotonic = Monotonic()
    leases = Leases(store, ManualClock(), TERMS, "x:1:a", monotonic)
    await leases.claim()
    # The lease minus one renewal period after the claim began.
    monotonic.now += TERMS.seconds - TERMS.renew_every - 0.01
    leases.check(execution_id)
    monotonic.now += 0.02
    with pytest.raises(LeaseLost, match="not renewed in time"):
        leases.check(execution_id)
    # Given up here; the next claim takes it back (nobody else did).
    assert not leases.holds(execution_id)
    [again] = await leases.claim()
    assert again.generation == 2
    leases.check(execution_id)


async def test_a_renewal_moves_the_send_deadline(store: Store) -> None:
    [execution_id] = await add_executions(store, 1, 1, 1)
    monotonic = Monotonic()
    leases = Leases(store, ManualClock(), TERMS, "x:1:a", monotonic)
    await leases.claim()
    monotonic.now += TERMS.renew_every
    assert await leases.renew() == []
    monotonic.now += TERMS.seconds - TERMS.renew_every - 0.01
    leases.check(execution_id)


@pytest.mark.postgres
async def test_a_released_lease_is_taken_over_within_a_second(
    pg_stores: tuple[Store, Store],
) -> None:
    first, second = pg_stores
    [execution_id] = await add_executions(first, 1, 1, 1)
    clock = ManualClock()
    x = Leases(first, clock, TERMS, "x:1:a")
    await x.claim()
    await x.release_all()
    assert not x.holds(execution_id)
    y_clock = ManualClock(clock.now() + timedelta(seconds=1.5))
    y = Leases(second, y_clock, TERMS, "y:2:b")
    [taken] = await y.claim()
    assert taken.previous_owner == "x:1:a"


async def test_one_process_on_sqlite_claims_every_live_execution_at_start(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('db')}/govex.db")
    await migrate(store)
    try:
        ids = await add_executions(store, 2, 1, 1)
        clock = ManualClock()
        earlier_run = Leases(store, clock, TERMS, "x:1:a")
        await earlier_run.claim()
        # The earlier process is gone (the database's exclusive lock says
        # so): its unexpired leases are this one's at once.
        this_run = Leases(store, clock, TERMS, "x:2:b")
        claims = await this_run.claim()
        assert sorted(c.execution_id for c in claims) == sorted(ids)
        assert {c.previous_owner for c in claims} == {"x:1:a"}
    finally:
        await store.close()


class Counting:
    """The paper account, counting every call the engine makes of it."""

    def __init__(self, paper: PaperExchange, calls: list[str]) -> None:
        self._paper = paper
        self._calls = calls
        self.account, self.kind, self.sandbox, self.quote = "paper", "paper", True, paper.quote
        self.accept_window = paper.accept_window
        # When each order lookup was made (event-loop time).
        self.lookups: list[float] = []

    async def markets(self) -> dict[str, Market]:
        self._calls.append("markets")
        return await self._paper.markets()

    async def balances(self) -> dict[str, Balance]:
        self._calls.append("balances")
        return await self._paper.balances()

    async def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        self._calls.append("prices")
        return await self._paper.prices(assets)

    async def create_order(
        self, client_id: str, symbol: str, side: str, quantity: Decimal, price: Decimal
    ) -> ExchangeOrder:
        self._calls.append("create_order")
        return await self._paper.create_order(client_id, symbol, side, quantity, price)

    async def fetch_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        self._calls.append("fetch_order")
        self.lookups.append(asyncio.get_running_loop().time())
        return await self._paper.fetch_order(client_id, symbol)

    async def cancel_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        self._calls.append("cancel_order")
        return await self._paper.cancel_order(client_id, symbol)

    async def orders(self, prefix: str, open_only: bool = False) -> list[ExchangeOrder]:
        self._calls.append("orders")
        return await self._paper.orders(prefix, open_only)


async def test_a_runner_past_its_send_deadline_never_calls_the_exchange() -> None:
    monotonic = Monotonic()
    calls: list[str] = []
    bench = await rig(wrap=lambda paper: Counting(paper, calls), monotonic=monotonic)
    try:
        [execution_id] = await add_executions(bench.store, 1, 3, 1)
        await bench.engine.reconcile()  # claims it (and lists the account's orders)
        assert bench.engine.leases.holds(execution_id)
        calls.clear()
        # Its loop stalled past the deadline (no renewal meanwhile): the
        # runner stops before its first exchange call.
        monotonic.now += bench.engine.leases.terms.seconds
        await bench.engine.run_supervised(execution_id)
        assert calls == []
        orders = await bench.store.read(lambda uow: uow.orders.for_execution(execution_id))
        assert {o.state for o in orders} == {OrderState.PENDING}
    finally:
        await bench.store.close()
        bench.paper.close()


async def test_a_lease_given_up_during_a_renewal_does_not_break_the_heartbeat(
    store: Store,
) -> None:
    [execution_id] = await add_executions(store, 1, 1, 1)
    monotonic = Monotonic()
    leases = Leases(store, ManualClock(), TERMS, "x:1:a", monotonic)
    await leases.claim()
    renewal = asyncio.create_task(leases.renew())
    await asyncio.sleep(0)  # the renewal's write is on its way
    monotonic.now += TERMS.seconds  # the runner's next call finds its deadline gone
    with pytest.raises(LeaseLost):
        leases.check(execution_id)
    assert await renewal == []  # (it raised KeyError, and the heartbeat died with it)
    assert not leases.holds(execution_id)


async def test_a_cancel_waiting_out_the_receive_window_polls_instead_of_looping() -> None:
    """Taken over with an order SUBMITTED by the old owner and not on the
    exchange, and the execution CANCELLING: the new owner looks the order up
    a poll apart until the receive window has passed, then ends it."""
    monotonic = Monotonic()
    calls: list[str] = []
    accounts: list[Counting] = []

    def counting(paper: PaperExchange) -> Counting:
        accounts.append(Counting(paper, calls))
        return accounts[0]

    bench = await rig(wrap=counting, monotonic=monotonic)
    try:
        [execution_id] = await add_executions(bench.store, 1, 1, 1)
        await Leases(bench.store, ManualClock(), TERMS, "x:1:a").claim()  # the old owner

        def as_left(uow: UnitOfWork) -> None:
            [order] = uow.orders.for_execution(execution_id)
            assert uow.orders.replace(replace(order, state=OrderState.SUBMITTED), order.state)
            execution = uow.executions.get(execution_id)
            assert execution is not None
            cancelling = replace(
                execution, state=ExecutionState.CANCELLING, version=execution.version + 1
            )
            assert uow.executions.replace(cancelling, execution.version)

        await bench.store.write(as_left)
        await bench.engine.reconcile()  # the takeover: inside the window, not lost yet
        lookups = accounts[0].lookups
        first = len(lookups)  # the runner's lookups come after reconciliation's
        runner = asyncio.create_task(bench.engine.run_supervised(execution_id))

        async def three_lookups() -> bool:
            return len(lookups) >= first + 3

        await wait_for(three_lookups, within=10)
        gaps = [b - a for a, b in itertools.pairwise(lookups[first:])]
        assert min(gaps) >= 0.4, gaps  # a poll apart, not a loop
        monotonic.now += accounts[0].accept_window + 0.1  # the window has passed
        await asyncio.wait_for(runner, timeout=10)
        execution = await bench.store.read(lambda uow: uow.executions.get(execution_id))
        assert execution is not None and execution.state.terminal, execution
    finally:
        await bench.store.close()
        bench.paper.close()
