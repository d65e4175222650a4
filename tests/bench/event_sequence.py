"""The event counter on PostgreSQL: two replicas (two stores on one
database) writing event-recording transactions at once, the counter taken
as the transaction's last statement (what govex does) against taken first
(the baseline, as before: its row lock then spans every statement of the
transaction, a write mutex across replicas).

Each transaction appends one event, then reads four times (the statements
a real unit runs after deciding what to record). Verified in the database:
as many events as transactions, sequences gap-free."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from govex_server.domain.events import DomainEvent, EventKind
from govex_server.domain.governance import GovernanceMode, ModeSetting
from govex_server.store import tables as t
from govex_server.store.database import Store, UnitOfWork
from govex_server.store.migrate import migrate
from tests.postgres import create_database, postgres_server

WRITERS_PER_REPLICA = 16
TRANSACTIONS = 3000


def _unit(early: bool) -> object:
    def unit(uow: UnitOfWork) -> None:
        now = datetime.now(UTC)
        setting = ModeSetting(GovernanceMode.MANUAL, 1, now, "bench")
        uow.events.append(DomainEvent(EventKind.MODE_CHANGED, now, "bench", "mode", setting))
        if early:
            uow.events.flush()  # the baseline: the counter's lock from here on
        for _ in range(4):
            uow.conn.execute(select(func.count()).select_from(t.plans)).scalar_one()

    return unit


async def _run(stores: tuple[Store, Store], early: bool) -> float:
    per_writer = TRANSACTIONS // (2 * WRITERS_PER_REPLICA)
    unit = _unit(early)

    async def writer(store: Store) -> None:
        for _ in range(per_writer):
            await store.write(unit)  # type: ignore[arg-type]

    started = time.perf_counter()
    await asyncio.gather(*(writer(s) for s in stores for _ in range(WRITERS_PER_REPLICA)))
    return per_writer * 2 * WRITERS_PER_REPLICA / (time.perf_counter() - started)


async def _verify(store: Store, expected: int) -> None:
    def unit(uow: UnitOfWork) -> tuple[int, int, int]:
        row = uow.conn.execute(
            select(func.count(), func.min(t.events.c.sequence), func.max(t.events.c.sequence))
        ).one()
        return int(row[0]), int(row[1]), int(row[2])

    count, low, high = await store.read(unit)
    assert count == expected, (count, expected)
    assert high - low + 1 == count, "a gap in the sequence"


async def _bench(base_url: str) -> tuple[float, float]:
    url = create_database(base_url, f"b_{uuid.uuid4().hex[:12]}")
    stores = (Store(url, lambda _e, _s: b""), Store(url, lambda _e, _s: b""))
    try:
        await migrate(stores[0])
        await _run(stores, early=False)  # warm the pools
        first = await _run(stores, early=True)
        last = await _run(stores, early=False)
        done = 3 * (TRANSACTIONS // (2 * WRITERS_PER_REPLICA)) * 2 * WRITERS_PER_REPLICA
        await _verify(stores[0], done)
        return first, last
    finally:
        for store in stores:
            await store.close()


def main() -> bool:
    with postgres_server() as base_url:
        first, last = asyncio.run(_bench(base_url))
    print(
        f"event counter, 2 replicas x {WRITERS_PER_REPLICA} writers on PostgreSQL: "
        f"taken last {last:,.0f} tx/s, taken first (baseline) {first:,.0f} tx/s, "
        f"ratio {last / first:.2f}x (verified: every event stored, sequences gap-free)"
    )
    return True


if __name__ == "__main__":
    main()
