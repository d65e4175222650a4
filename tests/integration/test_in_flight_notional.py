"""What an account's orders at the exchange may still trade, kept per
account by triggers on ``orders`` (migration 0011), on each backend: after
every kind of order change (into flight, a partial fill, out of flight by a
fill, a refusal or a delete) it equals the sum over the orders themselves,
account by account; and an upgrade builds it from the orders in flight."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from alembic import command
from sqlalchemy import Connection, text

from govex_server.domain.execution.budget import still_to_trade
from govex_server.domain.execution.orders import AT_EXCHANGE, OrderState
from govex_server.domain.execution.records import OrderRecord
from govex_server.store import migrate as migrations
from govex_server.store.database import Store, UnitOfWork
from tests.bench.engine_rig import add_executions

D = Decimal


def _expected(uow: UnitOfWork, execution_ids: list[str]) -> Decimal:
    """The sum over the orders, read back from the store."""
    total = D(0)
    for execution_id in execution_ids:
        for o in uow.orders.for_execution(execution_id):
            if o.state in AT_EXCHANGE:
                total += still_to_trade(o.quantity, o.filled, o.price)
    return total


async def _in_flight(store: Store, account: str, day: date) -> Decimal:
    # Nothing is traded in these tests: what counts is what is in flight.
    return await store.read(lambda uow: uow.daily_notional.counted(account, day))


async def test_the_total_follows_every_order_change_account_by_account(store: Store) -> None:
    paper_id, other_id = await add_executions(store, 2, 3, 3)

    def move_to_other(uow: UnitOfWork) -> None:
        execution = uow.executions.get(other_id)
        assert execution is not None
        assert uow.executions.replace(replace(execution, exchange="other"), execution.version)

    await store.write(move_to_other)
    orders = await store.read(lambda uow: uow.orders.for_execution(paper_id))
    [elsewhere, *_] = await store.read(lambda uow: uow.orders.for_execution(other_id))
    day = orders[0].create_time.date()
    current = {o.id: o for o in [*orders, elsewhere]}

    def change(order_id: str, **changes: Any) -> None:
        before = current[order_id]
        after = replace(before, **changes)

        def unit(uow: UnitOfWork) -> None:
            assert uow.orders.replace(after, before.state)

        current[order_id] = after
        steps.append(unit)

    a, b, c = (o.id for o in orders)
    price = D("50150.123456789012345678")
    steps: list[Any] = []
    change(a, state=OrderState.SUBMITTED, price=price)
    change(b, state=OrderState.SUBMITTED)
    change(elsewhere.id, state=OrderState.OPEN)
    change(a, state=OrderState.PARTIALLY_FILLED, filled=D("0.0037"))
    change(b, state=OrderState.UNKNOWN)
    change(c, state=OrderState.OPEN, quantity=D("0.02"))
    change(a, state=OrderState.FILLED, filled=D("0.01"))
    change(b, state=OrderState.REJECTED)
    for unit in steps:
        await store.write(unit)
        paper = await store.read(lambda uow: _expected(uow, [paper_id]))
        assert await _in_flight(store, "paper", day) == paper
        other = await store.read(lambda uow: _expected(uow, [other_id]))
        assert await _in_flight(store, "other", day) == other
    assert await _in_flight(store, "paper", day) == D("0.02") * D(50_150)  # c alone
    assert await _in_flight(store, "other", day) == D("0.01") * D(50_150)

    def delete(uow: UnitOfWork) -> None:
        uow.conn.execute(text("DELETE FROM orders WHERE id = :id"), {"id": c})

    await store.write(delete)
    assert await _in_flight(store, "paper", day) == 0


async def test_an_upgrade_counts_the_orders_already_in_flight(database_url: str) -> None:
    store = Store(database_url)
    try:

        def to_0010(conn: Connection) -> None:
            command.upgrade(migrations._config(conn), "0010")

        if store.engine is None:
            with store.sync_engine.connect() as conn, conn.begin():
                to_0010(conn)
        else:
            async with store.engine.begin() as aconn:
                await aconn.run_sync(to_0010)
        [execution_id] = await add_executions(store, 1, 2, 2)

        def send_one(uow: UnitOfWork) -> OrderRecord:
            [first, _] = uow.orders.for_execution(execution_id)
            sent = replace(first, state=OrderState.PARTIALLY_FILLED, filled=D("0.004"))
            assert uow.orders.replace(sent, first.state)
            return sent

        sent = await store.write(send_one)
        await migrations.migrate(store)
        expected = still_to_trade(sent.quantity, sent.filled, sent.price)
        assert await _in_flight(store, "paper", sent.create_time.date()) == expected
    finally:
        await store.close()
