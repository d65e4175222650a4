"""How a runner ends an execution, on each backend: a turn reads only the
live orders; once none is left, the end counts every order from its tally
(state, reason and fill, not the whole row) in the unit that ends it. The
ENDED event then carries exactly the counts GetExecution shows, an
execution with a live order is never ended, and a runner whose end was
refused goes on with the order that kept it open."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import select

from govex.execution.v1 import execution_pb2
from govex_server.api.execution_convert import execution_record_to_pb
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import ExecutionRecord, ExecutionState, OrderRecord
from govex_server.domain.principals import Principal, PrincipalKind, Role
from govex_server.store import tables
from govex_server.store.database import Store, UnitOfWork
from tests.bench.engine_rig import add_executions, rig


async def _stored_execution_events(store: Store, name: str) -> list[bytes]:
    e = tables.events
    query = (
        select(e.c.payload)
        .where(e.c.resource == name, e.c.kind == "EXECUTION_UPDATED")
        .order_by(e.c.sequence)
    )
    return await store.read(lambda uow: [bytes(r[0]) for r in uow.conn.execute(query)])


async def test_the_end_counts_every_order_as_get_execution_does(database_url: str) -> None:
    # The balance pays for 6 of the 10 buys: 6 FILLED, 4 REJECTED, an
    # execution PARTIALLY_FILLED with the refusals as its reason.
    bench = await rig(database_url=database_url, quote_balance=Decimal(3_100))
    try:
        [execution_id] = await add_executions(bench.store, 1, 10, 10)
        await bench.engine.reconcile()
        await asyncio.wait_for(bench.engine.run_supervised(execution_id), 30)
        view = await bench.engine.get(f"executions/{execution_id}")
        assert view.execution.state is ExecutionState.PARTIALLY_FILLED
        assert view.execution.state_reason == "REJECTED: safety: BALANCE"
        assert await bench.store.read(lambda uow: uow.orders.live_for_execution(execution_id)) == []
        [*_, last] = await _stored_execution_events(bench.store, view.execution.name)
        ended = execution_pb2.ExecutionEvent.FromString(last)
        assert ended.type == execution_pb2.EXECUTION_EVENT_TYPE_ENDED
        # Counted from the tallies, it is the execution GetExecution shows
        # from the whole rows: states, counts, and each leg's filled notional.
        assert ended.execution == execution_record_to_pb(view.execution, view.orders)
        # 6 fills of 0.01 BTC at the book's 50,025.
        assert ended.execution.legs[0].filled_notional.value == "3001.50"
    finally:
        await bench.store.close()


async def test_an_execution_with_a_live_order_is_not_ended(database_url: str) -> None:
    bench = await rig(database_url=database_url)
    try:
        [execution_id] = await add_executions(bench.store, 1, 3, 3)
        await bench.engine.reconcile()

        def read(
            uow: UnitOfWork,
        ) -> tuple[ExecutionRecord | None, list[OrderRecord], list[OrderRecord]]:
            return (
                uow.executions.get(execution_id),
                uow.orders.live_for_execution(execution_id),
                uow.orders.for_execution(execution_id),
            )

        execution, live, every = await bench.store.read(read)
        assert execution is not None
        assert live == every and len(live) == 3  # all PENDING, in sending order
        # As a runner whose turn found none live would, while a stray was
        # adopted: the end looks again in its own unit, and refuses.
        assert not await bench.engine.records.finish(execution)
        after, live, _ = await bench.store.read(read)
        assert after == execution and len(live) == 3
        assert await _stored_execution_events(bench.store, f"executions/{execution_id}") == []
        assert {o.state for o in every} == {OrderState.PENDING}
    finally:
        await bench.store.close()


async def test_a_runner_whose_end_is_refused_looks_again(database_url: str) -> None:
    # The runner's turn found no live order, but before its end an order
    # joins the execution (as a stray adopted by reconciliation would): the
    # end refuses, and the runner goes on with that order instead of leaving
    # the execution RUNNING without a runner.
    bench = await rig(database_url=database_url)
    try:
        [execution_id] = await add_executions(bench.store, 1, 2, 2)
        await bench.engine.reconcile()
        records = bench.engine.records
        finish = records.finish
        joined: list[OrderRecord] = []

        async def join_then_finish(execution: ExecutionRecord, cancelled_by: str = "") -> bool:
            if not joined:

                def add(uow: UnitOfWork) -> None:
                    first = uow.orders.for_execution(execution_id)[0]
                    stray = replace(
                        first,
                        id="01STRAY0000000000000000000",
                        client_order_id=f"{first.client_order_id}x",
                        slice_index=first.slice_index + 100,
                        state=OrderState.PENDING,
                        state_reason="",
                        exchange_order_id="",
                        filled=Decimal(0),
                        average_price=Decimal(0),
                        fee=Decimal(0),
                        send_time=None,
                    )
                    uow.orders.add(stray)
                    joined.append(stray)

                await bench.store.write(add)
            return await finish(execution, cancelled_by)

        setattr(records, "finish", join_then_finish)  # noqa: B010 (this instance's method)
        await asyncio.wait_for(bench.engine.run_supervised(execution_id), 30)
        view = await bench.engine.get(f"executions/{execution_id}")
        assert view.execution.state is ExecutionState.SUCCEEDED, view.execution.state_reason
        assert [o.state for o in view.orders] == [OrderState.FILLED] * 3
        assert joined[0].client_order_id in await bench.paper.received()
    finally:
        await bench.store.close()


async def test_a_cancel_counts_the_orders_as_get_execution_does(database_url: str) -> None:
    # The CANCELLING event is counted from the tallies too, in the cancel's unit.
    bench = await rig(database_url=database_url)
    try:
        [execution_id] = await add_executions(bench.store, 1, 3, 3)
        await bench.engine.reconcile()
        operator = Principal("olga", PrincipalKind.HUMAN, frozenset({Role.OPERATOR}))
        view = await bench.engine.cancel(operator, f"executions/{execution_id}", "wrong plan")
        [changed] = await _stored_execution_events(bench.store, view.execution.name)
        event = execution_pb2.ExecutionEvent.FromString(changed)
        assert event.type == execution_pb2.EXECUTION_EVENT_TYPE_STATE_CHANGED
        assert event.execution.state == execution_pb2.EXECUTION_STATE_CANCELLING
        assert event.execution == execution_record_to_pb(view.execution, view.orders)
        assert [(c.state, c.count) for c in event.execution.order_counts] == [
            (execution_pb2.ORDER_STATE_PENDING, 3)
        ]
    finally:
        await bench.store.close()
