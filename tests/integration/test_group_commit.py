"""The unit-of-work interface under concurrency: batched commits on SQLite
(one writer thread, a SAVEPOINT per unit, one fsync per batch) and pooled
transactions on PostgreSQL keep every unit whole, keep a failing unit from
touching its neighbours, and keep the event sequence gap-free and in order."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, event, func, select

from govex_server.domain.errors import GovexError
from govex_server.domain.events import DomainEvent, EventKind
from govex_server.domain.governance import GovernanceMode, ModeSetting
from govex_server.domain.plans import Plan, PlanState, Step, Target
from govex_server.domain.principals import PrincipalKind
from govex_server.services.audit import AuditLog
from govex_server.store import tables as t
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store, UnitOfWork
from govex_server.store.migrate import migrate
from govex_server.store.repositories import StoredEvent

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MODE = ModeSetting(GovernanceMode.MANUAL, 1, NOW, "dana")


def encode(event: DomainEvent, sequence: int) -> bytes:
    return f"{sequence}:{event.resource}".encode()


@pytest.fixture
async def event_store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store that can write events, on each backend."""
    store = Store(database_url, encode)
    await migrate(store)
    try:
        yield store
    finally:
        await store.close()


def plan(plan_id: str) -> Plan:
    return Plan(
        id=plan_id,
        state=PlanState.DRAFT,
        targets=(Target("BTC", 60.0), Target("USDT", 40.0)),
        reason="group commit",
        version=1,
        proposed=Step("alice", PrincipalKind.HUMAN, NOW),
        proposed_under_mode="MANUAL",
        create_time=NOW,
        update_time=NOW,
    )


def propose(plan_id: str) -> Callable[[UnitOfWork], str]:
    """What ProposePlan writes: the plan, its event and its audit record."""

    def unit(uow: UnitOfWork) -> str:
        uow.plans.add(plan(plan_id))
        uow.events.append(
            DomainEvent(EventKind.PLAN_PROPOSED, NOW, "alice", f"plans/{plan_id}", plan(plan_id))
        )
        uow.audit.append(
            AuditRecord(
                NOW,
                "alice",
                "human",
                "MANUAL",
                "ProposePlan",
                f"plans/{plan_id}",
                None,
                None,
                "",
                {},
            )
        )
        return plan_id

    return unit


async def count(store: Store, table: Table) -> int:
    query = select(func.count()).select_from(table)
    return int(await store.read(lambda uow: uow.conn.execute(query).scalar_one()))


async def test_a_unit_that_violates_a_constraint_fails_alone(event_store: Store) -> None:
    store = event_store
    await store.write(propose("p-existing"))
    delivered: list[StoredEvent] = []
    store.on_events(delivered.extend)
    ids = [f"p-{i:03d}" for i in range(199)]
    # One unit writes a plan of its own, then inserts a plan id that exists:
    # its second INSERT fails inside the batch, and its first must go too.
    existing = propose("p-existing")

    def half_then_conflict(uow: UnitOfWork) -> str:
        uow.plans.add(plan("p-half-written"))
        return existing(uow)

    units = [propose(i) for i in ids]
    units.insert(97, half_then_conflict)
    results = await asyncio.gather(
        *(store.write(u) for u in units),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1
    assert isinstance(refused[0], GovexError) and refused[0].reason == "CONFLICT"
    assert results[97] is refused[0]
    assert sorted(r for r in results if isinstance(r, str)) == ids
    # Nothing of the refused unit, everything of the others.
    assert await count(store, t.plans) == 200
    half = select(t.plans.c.id).where(t.plans.c.id == "p-half-written")
    assert await store.read(lambda uow: uow.conn.execute(half).first()) is None
    assert await count(store, t.audit_log) == 200
    assert await count(store, t.events) == 200
    # The audit records of a batch (chained at its end, around the refused
    # unit) form one unbroken chain with those before it.
    verdict = await AuditLog(store).verify()
    assert (verdict.intact, verdict.count) == (True, 200), verdict.problem
    handed = [e.sequence for e in delivered]
    assert sorted(handed) == list(range(2, 201))
    if store.group_commit is not None:
        # One writer: batches commit, and are handed over, in sequence order.
        assert handed == list(range(2, 201))
        # Batched: far fewer commits (fsyncs) than units.
        assert store.group_commit.units == 201
        assert store.group_commit.batches < 100


async def test_an_event_that_cannot_be_encoded_fails_only_its_unit(database_url: str) -> None:
    # On SQLite the units of a batch chain their audit records and number
    # their events into the batch's ledger: a failure there is its own
    # unit's, and leaves no gap in either sequence.
    def picky(event: DomainEvent, sequence: int) -> bytes:
        if event.resource == "plans/p-bad":
            raise ValueError("this payload cannot be encoded")
        return encode(event, sequence)

    store = Store(database_url, picky)
    await migrate(store)
    try:
        delivered: list[StoredEvent] = []
        store.on_events(delivered.extend)
        ids = [f"p-{i:02d}" for i in range(40)]
        units = [propose(i) for i in ids]
        units.insert(20, propose("p-bad"))
        results = await asyncio.gather(*(store.write(u) for u in units), return_exceptions=True)
        assert isinstance(results[20], ValueError)
        assert sorted(r for r in results if isinstance(r, str)) == ids
        assert [await count(store, table) for table in (t.plans, t.audit_log, t.events)] == [
            40,
            40,
            40,
        ]
        assert sorted(e.sequence for e in delivered) == list(range(1, 41))
        verdict = await AuditLog(store).verify()
        assert (verdict.intact, verdict.count) == (True, 40), verdict.problem
        if store.group_commit is not None:
            assert store.group_commit.batches < 41  # the bad unit shared a batch
    finally:
        await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store, its group-commit writer not connected yet."""
    store = Store(f"sqlite:///{tmp_path}/govex.db", encode)
    await migrate(store)
    assert store.group_commit is not None
    try:
        yield store
    finally:
        await store.close()


async def test_a_caller_hears_back_only_after_its_batch_committed(sqlite_store: Store) -> None:
    store = sqlite_store
    assert store.group_commit is not None
    failing = [True]

    @event.listens_for(store.group_commit.engine, "commit")
    def _disk_full(_conn: object) -> None:
        if failing[0]:
            raise OSError("disk full (injected at COMMIT)")

    with pytest.raises(OSError, match="disk full"):
        await store.write(propose("p-lost"))
    failing[0] = False
    assert await count(store, t.plans) == 0
    assert await store.write(propose("p-kept")) == "p-kept"
    assert (await count(store, t.plans), await count(store, t.events)) == (1, 1)


async def test_a_writer_that_cannot_connect_says_so_and_recovers(sqlite_store: Store) -> None:
    store = sqlite_store
    assert store.group_commit is not None
    failing = [True]

    @event.listens_for(store.group_commit.engine, "connect")
    def _refuse(_dbapi: object, _record: object) -> None:
        if failing[0]:
            raise OSError("cannot open the database (injected)")

    with pytest.raises(OSError, match="cannot open"):
        await store.write(propose("p-refused"))
    failing[0] = False
    # The writer thread is alive: the next write connects and commits.
    assert await store.write(propose("p-kept")) == "p-kept"
    assert await count(store, t.plans) == 1


async def test_a_cancelled_caller_does_not_cut_its_unit(event_store: Store) -> None:
    store = event_store
    task = asyncio.create_task(store.write(propose("p-cancelled")))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The unit was queued: it commits whole (plan, event, audit) regardless.
    for _ in range(200):
        if await count(store, t.plans) == 1:
            break
        await asyncio.sleep(0.01)
    assert (await count(store, t.plans), await count(store, t.events)) == (1, 1)
    assert await count(store, t.audit_log) == 1


# ---------------------------------------------------------------- ordering

Write = tuple[int, bool, int]  # (events appended, fails at the end, yields before)


async def interleave(store: Store, writes: list[Write]) -> tuple[list[int], int]:
    delivered: list[int] = []
    store.on_events(lambda events: delivered.extend(e.sequence for e in events))

    async def one(index: int, events: int, fails: bool, yields: int) -> None:
        for _ in range(yields):
            await asyncio.sleep(0)

        def unit(uow: UnitOfWork) -> None:
            for k in range(events):
                uow.events.append(
                    DomainEvent(EventKind.MODE_CHANGED, NOW, "", f"w/{index}/{k}", MODE)
                )
            if fails:
                raise ValueError("refused after writing")

        with contextlib.suppress(ValueError):
            await store.write(unit)

    await asyncio.gather(*(one(i, e, f, y) for i, (e, f, y) in enumerate(writes)))
    expected = sum(e for e, f, _ in writes if not f)
    return delivered, expected


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 9).map(lambda n: n < 3),
            st.integers(0, 5),
        ),
        min_size=500,
        max_size=500,
    )
)
def test_events_stay_gap_free_and_ordered_under_batched_writes(
    tmp_path_factory: pytest.TempPathFactory, writes: list[Write]
) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('order')}/govex.db"

    async def run() -> None:
        store = Store(url, encode)
        await migrate(store)
        try:
            delivered, expected = await interleave(store, writes)
            stored = await store.read(lambda uow: uow.events.after(0, None, 10_000))
        finally:
            await store.close()
        assert delivered == list(range(1, expected + 1))
        assert [e.sequence for e in stored] == delivered
        # Every event's payload was encoded with the sequence it got.
        assert all(e.payload.startswith(f"{e.sequence}:".encode()) for e in stored)

    asyncio.run(run())


@pytest.mark.postgres
async def test_events_stay_gap_free_and_ordered_on_postgres(pg_base_url: str) -> None:
    from tests.postgres import create_database

    store = Store(create_database(pg_base_url, f"t_order_{uuid.uuid4().hex[:12]}"), encode)
    await migrate(store)
    rng = random.Random(11)
    writes = [(rng.randint(0, 3), rng.random() < 0.2, rng.randint(0, 5)) for _ in range(500)]
    try:
        delivered, expected = await interleave(store, writes)
        stored = await store.read(lambda uow: uow.events.after(0, None, 10_000))
    finally:
        await store.close()
    # Concurrent transactions on PostgreSQL commit in sequence order (the
    # counter row lock); what each hands over is still its own events only.
    assert sorted(delivered) == list(range(1, expected + 1))
    assert [e.sequence for e in stored] == list(range(1, expected + 1))
