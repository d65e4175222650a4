"""A PARALLEL round's slots: at most max_parallel orders at the exchange at
once, as many more decided (SUBMITTED, durable) and waiting for a slot, and
a decided order checked once more before it is sent: what was decided before
a Freeze or a CancelExecution is never sent after it.

The paper account sits behind a door that holds every create request until
the test opens it, so the orders at the exchange and the ones waiting for a
slot can be counted while they wait."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import OrderRecord
from govex_server.domain.execution.safety import Market
from govex_server.domain.freezes import FreezeType
from govex_server.domain.principals import Principal, PrincipalKind, Role
from govex_server.exchanges.base import Balance, ExchangeOrder
from govex_server.exchanges.paper import PaperExchange
from govex_server.store.database import UnitOfWork
from tests.bench.engine_rig import Rig, add_executions, rig

OPERATOR = Principal("olga", PrincipalKind.HUMAN, frozenset({Role.OPERATOR}))


class Door:
    """The paper account; create requests wait inside until ``opened``."""

    def __init__(self, paper: PaperExchange) -> None:
        self._paper = paper
        self.account, self.kind, self.sandbox, self.quote = "paper", "paper", True, paper.quote
        self.accept_window = paper.accept_window
        self.opened = asyncio.Event()
        self.inside = 0
        self.most_inside = 0
        self.received: list[str] = []

    async def markets(self) -> dict[str, Market]:
        return await self._paper.markets()

    async def balances(self) -> dict[str, Balance]:
        return await self._paper.balances()

    async def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        return await self._paper.prices(assets)

    async def create_order(
        self, client_id: str, symbol: str, side: str, quantity: Decimal, price: Decimal
    ) -> ExchangeOrder:
        self.received.append(client_id)
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await self.opened.wait()
            return await self._paper.create_order(client_id, symbol, side, quantity, price)
        finally:
            self.inside -= 1

    async def fetch_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        return await self._paper.fetch_order(client_id, symbol)

    async def cancel_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        return await self._paper.cancel_order(client_id, symbol)

    async def orders(self, prefix: str, open_only: bool = False) -> list[ExchangeOrder]:
        return await self._paper.orders(prefix, open_only)


async def _held(orders: int, parallel: int) -> tuple[Rig, Door, str, asyncio.Task[None]]:
    """A run whose first ``parallel`` orders are at the door, and as many
    more decided behind them."""
    doors: list[Door] = []

    def door(paper: PaperExchange) -> Door:
        doors.append(Door(paper))
        return doors[0]

    bench = await rig(wrap=door)
    [execution_id] = await add_executions(bench.store, 1, orders, parallel)
    await bench.engine.reconcile()  # claims it, as its owner would have
    run = asyncio.create_task(bench.engine.run_supervised(execution_id))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while doors[0].inside < parallel or len(await _submitted(bench, execution_id)) < 2 * parallel:
        assert loop.time() < deadline, "the round never filled its slots"
        await asyncio.sleep(0.01)
    # Every unit queued before this one has committed (the writer is FIFO):
    # a decision past the bound would be visible now.
    await bench.store.write(lambda uow: None)
    return bench, doors[0], execution_id, run


async def _submitted(bench: Rig, execution_id: str) -> list[OrderRecord]:
    def read(uow: UnitOfWork) -> list[OrderRecord]:
        return [
            o for o in uow.orders.for_execution(execution_id) if o.state is OrderState.SUBMITTED
        ]

    return await bench.store.read(read)


async def _final(bench: Rig, execution_id: str) -> list[OrderRecord]:
    return list((await bench.engine.get(f"executions/{execution_id}")).orders)


async def test_at_most_max_parallel_orders_are_at_the_exchange_and_as_many_wait() -> None:
    bench, door, execution_id, run = await _held(orders=12, parallel=4)
    try:
        assert door.inside == 4
        assert len(await _submitted(bench, execution_id)) == 8  # 4 inside, 4 decided behind
        door.opened.set()
        await asyncio.wait_for(run, 30)
        final = await _final(bench, execution_id)
        assert [o.state for o in final] == [OrderState.FILLED] * 12
        assert door.most_inside == 4
    finally:
        door.opened.set()
        await bench.store.close()


async def test_an_order_decided_before_a_freeze_is_not_sent_after_it() -> None:
    bench, door, execution_id, run = await _held(orders=6, parallel=2)
    try:
        sent_before = list(door.received)
        assert len(sent_before) == 2
        # Not a FULL_FREEZE (which also cancels the execution): one that
        # forbids the leg's purchases from the next send on.
        await bench.freezes.freeze(
            OPERATOR, FreezeType.ERROR_FREEZE, "incident", timedelta(hours=1), None
        )
        door.opened.set()
        await asyncio.wait_for(run, 30)
        final = await _final(bench, execution_id)
        # The exchange heard only of the two that were inside.
        assert door.received == sent_before
        assert len(await bench.paper.received()) == 2
        by_id = {o.client_order_id: o for o in final}
        assert {by_id[c].state for c in sent_before} == {OrderState.FILLED}
        waited = [o for o in final if o.send_time is not None and o.exchange_order_id == ""]
        assert len(waited) == 2, [(o.state, o.state_reason) for o in final]
        for order in waited:
            assert order.state is OrderState.CANCELLED
            assert order.state_reason.endswith(", withdrawn before it was sent")
        assert sum(o.state is OrderState.CANCELLED for o in final) == 4
    finally:
        door.opened.set()
        await bench.store.close()


async def test_an_order_decided_before_a_cancel_is_not_sent_after_it() -> None:
    bench, door, execution_id, run = await _held(orders=6, parallel=2)
    try:
        sent_before = list(door.received)
        await bench.engine.cancel(OPERATOR, f"executions/{execution_id}", "wrong plan")
        door.opened.set()
        await asyncio.wait_for(run, 30)
        final = await _final(bench, execution_id)
        assert door.received == sent_before
        assert len(await bench.paper.received()) == 2
        waited = [o for o in final if o.send_time is not None and o.exchange_order_id == ""]
        assert len(waited) == 2, [(o.state, o.state_reason) for o in final]
        assert all(o.state is OrderState.CANCELLED for o in waited)
        assert all(
            o.state_reason == "cancelled by olga: wrong plan, withdrawn before it was sent"
            for o in waited
        ), [o.state_reason for o in waited]
    finally:
        door.opened.set()
        await bench.store.close()


def _runners_of(execution_id: str) -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == f"execution-{execution_id}"]


async def test_a_cancel_during_a_run_starts_no_second_runner() -> None:
    # A second runner beside the round would stop the execution itself: it
    # resolved the decided orders at the exchange (not found: REJECTED)
    # before the round could withdraw them.
    bench, door, execution_id, run = await _held(orders=6, parallel=2)
    try:
        assert len(_runners_of(execution_id)) == 1
        await bench.engine.cancel(OPERATOR, f"executions/{execution_id}", "wrong plan")
        assert len(_runners_of(execution_id)) == 1
        door.opened.set()
        await asyncio.wait_for(run, 30)
        assert _runners_of(execution_id) == []
    finally:
        door.opened.set()
        await bench.store.close()


async def test_a_round_never_decides_to_spend_the_balance_twice() -> None:
    # Each buy takes about 502 USDT (0.01 BTC at its limit, and the fee):
    # the balance pays for 6 of the 10, which are decided at once.
    bench = await rig(quote_balance=Decimal(3_100))
    try:
        [execution_id] = await add_executions(bench.store, 1, 10, 10)
        await bench.engine.reconcile()
        await asyncio.wait_for(bench.engine.run_supervised(execution_id), 30)
        final = await _final(bench, execution_id)
        states = sorted(o.state.value for o in final)
        assert states == ["FILLED"] * 6 + ["REJECTED"] * 4, [
            (o.state, o.state_reason) for o in final
        ]
        assert {o.state_reason for o in final if o.state is OrderState.REJECTED} == {
            "safety: BALANCE"
        }
        # Refused by the safety rules, not by the exchange: it heard of six.
        assert len(await bench.paper.received()) == 6
    finally:
        await bench.store.close()


async def test_a_round_makes_a_task_only_for_an_order_it_can_take_on() -> None:
    # 12 orders, 2 slots: while the door holds, 2 orders are inside and 2
    # decided behind them, and no task exists for the 8 others yet.
    bench, door, execution_id, run = await _held(orders=12, parallel=2)
    try:
        sending = [
            t
            for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "cr_code", None) is not None
            and t.get_coro().cr_code.co_filename.endswith("order_sender.py")  # type: ignore[union-attr]
        ]
        assert len(sending) == 4
        door.opened.set()
        await asyncio.wait_for(run, 30)
        assert [o.state for o in await _final(bench, execution_id)] == [OrderState.FILLED] * 12
    finally:
        door.opened.set()
        await bench.store.close()
