"""Units written together (store/shared_units.py), on each backend: the
units handed in while one shared unit is at the writer go out as one more,
each sees what the units before it wrote, and a unit that fails fails alone.
The units record no events: the ``store`` fixture's store refuses them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from govex_server.domain.errors import GovexError
from govex_server.store import tables as t
from govex_server.store.database import Store, UnitOfWork
from govex_server.store.shared_units import SharedUnits
from tests.integration.test_group_commit import plan


def add(plan_id: str) -> Callable[[UnitOfWork], int]:
    """Adds a plan; how many plans the unit sees once it has."""

    def unit(uow: UnitOfWork) -> int:
        uow.plans.add(plan(plan_id))
        return int(uow.conn.execute(select(func.count()).select_from(t.plans)).scalar_one())

    return unit


async def stored_ids(store: Store) -> set[str]:
    return await store.read(
        lambda uow: {r[0] for r in uow.conn.execute(select(t.plans.c.id)).all()}
    )


async def test_units_handed_in_together_are_one_unit_and_see_each_other(store: Store) -> None:
    shared = SharedUnits(store)
    # Handed in within one turn of the loop: the first shared unit takes
    # them all, in the order they came.
    seen = await asyncio.gather(*(shared.write(add(f"P{i:02d}")) for i in range(10)))
    assert seen == list(range(1, 11))
    assert shared.shared == 1
    assert shared.alone == 0
    assert await stored_ids(store) == {f"P{i:02d}" for i in range(10)}


async def test_a_shared_unit_takes_at_most_its_size_in_the_order_they_came(
    store: Store,
) -> None:
    shared = SharedUnits(store, most=4)
    # Ten handed in within one turn of the loop: shared units of 4, 4 and 2,
    # each seeing the ones before it.
    seen = await asyncio.gather(*(shared.write(add(f"P{i:02d}")) for i in range(10)))
    assert seen == list(range(1, 11))
    assert shared.shared == 3
    assert shared.alone == 0
    assert await stored_ids(store) == {f"P{i:02d}" for i in range(10)}
    with pytest.raises(ValueError, match="at least one unit"):
        SharedUnits(store, most=0)


async def test_units_handed_in_while_one_is_written_make_the_next(store: Store) -> None:
    shared = SharedUnits(store)
    first = asyncio.ensure_future(shared.write(add("A")))
    # Wait until the first shared unit is at the writer (it runs "A" alone).
    while shared.shared == 0:
        await asyncio.sleep(0)
    later = [asyncio.ensure_future(shared.write(add(f"B{i}"))) for i in range(5)]
    assert await first == 1
    assert sorted(await asyncio.gather(*later)) == [2, 3, 4, 5, 6]
    assert shared.shared == 2


async def test_a_unit_that_fails_fails_alone(store: Store) -> None:
    shared = SharedUnits(store)

    def refused(uow: UnitOfWork) -> int:
        uow.plans.add(plan("HALF"))  # written, then undone with its unit
        raise ValueError("this unit is refused")

    units = [add("P0"), add("P1"), refused, add("P2")]
    results = await asyncio.gather(*(shared.write(u) for u in units), return_exceptions=True)
    assert isinstance(results[2], ValueError)
    assert str(results[2]) == "this unit is refused"
    assert [r for i, r in enumerate(results) if i != 2] == [1, 2, 3]
    # Nothing of the refused unit; the others each run once more, alone.
    assert await stored_ids(store) == {"P0", "P1", "P2"}
    assert shared.alone == 4


async def test_a_lone_unit_that_fails_gets_its_own_error(store: Store) -> None:
    shared = SharedUnits(store)
    assert await shared.write(add("SAME")) == 1
    with pytest.raises(GovexError) as raised:
        await shared.write(add("SAME"))  # the id is taken: CONFLICT, as from Store.write
    assert raised.value.reason == "CONFLICT"
    assert await stored_ids(store) == {"SAME"}
    # Alone already: it is not run a second time.
    assert (shared.shared, shared.alone) == (2, 0)
