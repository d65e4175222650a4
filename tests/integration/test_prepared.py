"""Prepared statements write and read exactly what SQLAlchemy's own
``Connection.execute`` would, on each backend: the same stored values for
every column type the hot paths use, the same rows back, and the same error
(a duplicate key is still ABORTED CONFLICT)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, bindparam, insert, select, update

from govex_server.domain.errors import GovexError
from govex_server.store import tables as t
from govex_server.store.database import Store, UnitOfWork
from govex_server.store.migrate import migrate
from govex_server.store.prepared import Prepared

# A time with microseconds, given in another zone: stored as UTC.
WHEN = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))

_scratch = MetaData()
# A nullable JSON column: a Python None must become the JSON text 'null', as
# SQLAlchemy stores it, not SQL NULL.
notes = Table(
    "prepared_notes",
    _scratch,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("body", JSON, nullable=True),
)
# Times and amounts that repeat across rows, as an execution's orders do.
repeats = Table(
    "prepared_repeats",
    _scratch,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", t.UtcDateTime, nullable=True),
    Column("amount", t.Amount, nullable=True),
    Column("body", JSON, nullable=True),
)


def plan_row(plan_id: str) -> dict[str, Any]:
    return {
        "id": plan_id,
        "state": "DRAFT",
        "version": 3,
        "targets": [["BTC", 60.5], ["ÉTH", 39.5, True]],
        "reason": "naïve reason, ✓ unicode and 'quotes'",
        "proposed_by": "alice",
        "proposed_under_mode": "MANUAL",
        "steps": {"proposed": {"principal": "alice", "time": "2026-03-01T07:30:15Z"}},
        "activated_at": None,
        "executed_at": WHEN,
        "cooldown_overridden": True,
        "created_at": WHEN,
        "updated_at": WHEN + timedelta(microseconds=1),
    }


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store(database_url)
    await migrate(store)
    await store.write(lambda uow: _scratch.create_all(uow.conn))
    try:
        yield store
    finally:
        await store.close()


async def test_an_insert_stores_what_sqlalchemy_stores(store: Store) -> None:
    prepared = Prepared(insert(t.plans), [c.key for c in t.plans.c])

    def both(uow: UnitOfWork) -> None:
        prepared.execute(uow.conn, plan_row("PREPARED"))
        uow.conn.execute(insert(t.plans), plan_row("PLAIN"))

    await store.write(both)

    def rows(uow: UnitOfWork) -> dict[str, dict[str, Any]]:
        found = uow.conn.execute(select(t.plans)).mappings().all()
        return {row["id"]: {k: v for k, v in row.items() if k != "id"} for row in found}

    stored = await store.read(rows)
    assert stored["PREPARED"] == stored["PLAIN"]
    assert stored["PREPARED"]["created_at"] == WHEN.astimezone(UTC)
    assert stored["PREPARED"]["created_at"].tzinfo is not None
    assert stored["PREPARED"]["targets"] == [["BTC", 60.5], ["ÉTH", 39.5, True]]
    assert stored["PREPARED"]["cooldown_overridden"] is True
    assert stored["PREPARED"]["activated_at"] is None

    # The raw text in the database is the same too (JSON 'null', not NULL).
    note = Prepared(insert(notes), ["id", "body"])

    def notes_both(uow: UnitOfWork) -> list[tuple[Any, ...]]:
        note.execute(uow.conn, {"id": 1, "body": None})
        uow.conn.execute(insert(notes), {"id": 2, "body": None})
        raw = uow.conn.exec_driver_sql("SELECT id, CAST(body AS TEXT) FROM prepared_notes")
        return sorted(tuple(r) for r in raw)

    assert await store.write(notes_both) == [(1, "null"), (2, "null")]


async def test_first_and_rowcount_match_sqlalchemy(store: Store) -> None:
    await store.write(lambda uow: uow.conn.execute(insert(t.plans), plan_row("P1")))
    by_id = select(t.plans.c.id, t.plans.c.created_at, t.plans.c.targets).where(
        t.plans.c.id == bindparam("b_id")
    )
    bump = update(t.plans).where(t.plans.c.id == bindparam("b_id"))

    def compare(uow: UnitOfWork) -> tuple[Any, ...]:
        prepared = Prepared(by_id).first(uow.conn, {"b_id": "P1"})
        plain = uow.conn.execute(by_id, {"b_id": "P1"}).first()
        missing = Prepared(by_id).first(uow.conn, {"b_id": "NONE"})
        changed = Prepared(bump, ["version"]).execute(uow.conn, {"b_id": "P1", "version": 9})
        unchanged = Prepared(bump, ["version"]).execute(uow.conn, {"b_id": "NONE", "version": 9})
        mapping = Prepared(by_id).first_mapping(uow.conn, {"b_id": "P1"})
        assert mapping == dict(uow.conn.execute(by_id, {"b_id": "P1"}).mappings().one())
        assert Prepared(by_id).first_mapping(uow.conn, {"b_id": "NONE"}) is None
        return prepared, tuple(plain) if plain else None, missing, changed, unchanged

    prepared, plain, missing, changed, unchanged = await store.write(compare)
    assert prepared == plain
    assert prepared[1] == WHEN.astimezone(UTC)
    assert missing is None
    assert (changed, unchanged) == (1, 0)


async def test_rows_equal_sqlalchemys_rows(store: Store) -> None:
    from sqlalchemy import literal, or_

    await store.write(
        lambda uow: uow.conn.execute(insert(t.plans), [plan_row(f"R{i}") for i in range(4)])
    )
    # Literal values (bound once, at compile time) beside a parameter.
    some = select(t.plans.c.id, t.plans.c.created_at, t.plans.c.targets).where(
        or_(t.plans.c.id == literal("R1"), t.plans.c.id == literal("R3")),
        t.plans.c.version >= bindparam("b_version"),
    )

    def compare(uow: UnitOfWork) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        prepared = Prepared(some).rows(uow.conn, {"b_version": 0})
        plain = [tuple(r) for r in uow.conn.execute(some, {"b_version": 0})]
        assert Prepared(some).rows(uow.conn, {"b_version": 10**6}) == []
        return sorted(prepared), sorted(plain)

    prepared, plain = await store.read(compare)
    assert [r[0] for r in prepared] == ["R1", "R3"]
    assert prepared == plain
    assert prepared[0][1].tzinfo is not None  # processed: an aware datetime, not text


async def test_a_duplicate_key_is_a_conflict_and_nothing_is_half_written(store: Store) -> None:
    prepared = Prepared(insert(t.plans), [c.key for c in t.plans.c])
    await store.write(lambda uow: prepared.execute(uow.conn, plan_row("TWICE")))

    def again(uow: UnitOfWork) -> None:
        uow.conn.execute(insert(t.plans), plan_row("ALONGSIDE"))
        prepared.execute(uow.conn, plan_row("TWICE"))

    with pytest.raises(GovexError) as raised:
        await store.write(again)
    assert raised.value.reason == "CONFLICT"
    ids = await store.read(lambda uow: sorted(uow.conn.execute(select(t.plans.c.id)).scalars()))
    assert ids == ["TWICE"]


async def test_execute_many_inserts_every_row(store: Store) -> None:
    prepared = Prepared(insert(t.plans), [c.key for c in t.plans.c])
    await store.write(
        lambda uow: prepared.execute_many(uow.conn, [plan_row(f"M{i}") for i in range(5)])
    )
    ids = await store.read(lambda uow: sorted(uow.conn.execute(select(t.plans.c.id)).scalars()))
    assert ids == [f"M{i}" for i in range(5)]


def test_only_statements_are_prepared() -> None:
    with pytest.raises(TypeError):
        Prepared(t.plans.c.id == 1)


async def test_the_writer_compiles_every_hot_statement_on_its_first_connection(
    store: Store,
) -> None:
    made = Prepared(select(t.plans.c.id).where(t.plans.c.id == bindparam("b_id")))
    assert not made._by_dialect
    await store.write(lambda uow: None)
    if store.is_sqlite:
        # A store made before this statement: its writer connected already.
        fresh = Store(store.url)
        try:
            await fresh.write(lambda uow: None)
        finally:
            await fresh.close()
        assert "sqlite" in made._by_dialect


async def test_rows_that_repeat_times_and_amounts_read_as_sqlalchemys(store: Store) -> None:
    # A read decodes each distinct text of a time or an amount once: equal
    # texts share a value, different texts (another scale too) do not, and a
    # mutable value (JSON) is never shared between rows.
    values = [
        (WHEN, Decimal("1.5"), {"a": 1}),
        (WHEN, Decimal("1.50"), {"a": 1}),
        (WHEN + timedelta(microseconds=1), Decimal("1.5"), None),
        (None, None, {"a": 1}),
        (WHEN, Decimal("-0.00000001"), [1]),
    ]
    rows = [{"id": i, "at": a, "amount": m, "body": b} for i, (a, m, b) in enumerate(values)]
    await store.write(lambda uow: uow.conn.execute(insert(repeats), rows))
    every = select(repeats).order_by(repeats.c.id)

    def compare(uow: UnitOfWork) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        return Prepared(every).rows(uow.conn), [tuple(r) for r in uow.conn.execute(every)]

    prepared, plain = await store.read(compare)

    # Decimal equality ignores the scale: compared as text, and by type.
    def shown(found: list[tuple[Any, ...]]) -> list[tuple[str, ...]]:
        return [tuple(f"{type(v).__name__}:{v}" for v in row) for row in found]

    assert shown(prepared) == shown(plain)
    assert [r[1] for r in prepared] == [(a and a.astimezone(UTC)) for a, _, _ in values]
    assert prepared[0][3] == prepared[1][3] and prepared[0][3] is not prepared[1][3]
