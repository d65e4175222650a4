"""An order's conditional replace, on each backend: given the record it was
made from, it writes only the fields given a new value, and what is read
back is exactly the new record (a new amount of equal value but another
scale included); it still refuses when the stored state moved on."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import OrderRecord
from govex_server.store.database import Store, UnitOfWork
from tests.bench.engine_rig import add_executions


async def _first_order(store: Store) -> OrderRecord:
    [execution_id] = await add_executions(store, 1, 1, 1)
    [order] = await store.read(lambda uow: uow.orders.for_execution(execution_id))
    return order


async def _read(store: Store, order: OrderRecord) -> OrderRecord | None:
    return await store.read(lambda uow: uow.orders.get(order.id))


async def test_the_changed_fields_are_written_and_read_back_exactly(store: Store) -> None:
    before = await _first_order(store)
    after = replace(
        before,
        state=OrderState.SUBMITTED,
        state_reason="sent",
        # The same value at another scale: a change, written as given.
        quantity=Decimal(str(before.quantity) + "0"),
        price=Decimal("50150.123456789012345678"),
        safety={"passed": True, "issues": []},
        send_time=before.update_time + timedelta(seconds=3),
        update_time=before.update_time + timedelta(seconds=3),
    )
    assert after.quantity == before.quantity

    def unit(uow: UnitOfWork) -> bool:
        return uow.orders.replace(after, before.state, before)

    assert await store.write(unit)
    stored = await _read(store, before)
    assert stored == after
    assert stored is not None and str(stored.quantity) == str(after.quantity)


async def test_a_replace_of_a_state_that_moved_on_writes_nothing(store: Store) -> None:
    before = await _first_order(store)
    sent = replace(before, state=OrderState.SUBMITTED, state_reason="sent")
    assert await store.write(lambda uow: uow.orders.replace(sent, before.state, before))
    # Made from the PENDING record, which is no longer what is stored.
    stale = replace(before, state=OrderState.CANCELLED, state_reason="late")
    assert not await store.write(lambda uow: uow.orders.replace(stale, before.state, before))
    assert await _read(store, before) == sent


async def test_a_replace_without_the_previous_record_writes_every_field(store: Store) -> None:
    before = await _first_order(store)
    after = replace(before, state=OrderState.SUBMITTED, fee=Decimal("0.25"), attempt=2)
    assert await store.write(lambda uow: uow.orders.replace(after, before.state))
    assert await _read(store, before) == after
