"""Amounts are exact end to end: any decimal with up to 18 places goes through
the wire (google.type.Decimal), the store (SQLite text, PostgreSQL NUMERIC)
and back byte for byte; a database of floats from before is converted to the
decimals its floats were written as."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.type import decimal_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from govex.execution.v1 import execution_pb2
from govex.governance.v1 import events_pb2
from govex_server.api.convert import decimal
from govex_server.domain import money
from govex_server.domain.execution.orders import OrderState, client_order_id
from govex_server.domain.execution.records import (
    ExecutionRecord,
    ExecutionState,
    OrderRecord,
    Strategy,
)
from govex_server.domain.ids import UlidFactory
from govex_server.domain.policy import PolicyState, derive
from govex_server.domain.policy_settings import PolicySettings
from govex_server.store import migrate as migrations
from govex_server.store import tables as t
from govex_server.store.database import Store, UnitOfWork
from tests.conftest import Harness

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
F = descriptor_pb2.FieldDescriptorProto


def old_contract() -> dict[str, Any]:
    """The message classes of the draft contract's events (doubles and a
    string type), built from descriptors: independent of the migration's own
    wire code."""
    file = descriptor_pb2.FileDescriptorProto(name="old.proto", package="old", syntax="proto3")
    order = file.message_type.add(name="Order")
    order.field.add(name="symbol", number=4, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    order.field.add(name="type", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    for number, name in enumerate(
        ("quantity", "price", "filled_quantity", "average_price", "fee"), start=7
    ):
        order.field.add(name=name, number=number, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    order.field.add(name="state", number=12, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    event = file.message_type.add(name="OrderEvent")
    event.field.add(name="sequence", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    event.field.add(
        name="order", number=3, type=F.TYPE_MESSAGE, type_name=".old.Order", label=F.LABEL_OPTIONAL
    )
    policy = file.message_type.add(name="ExecutionPolicy")
    policy.field.add(name="cap_daily_percent", number=2, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    policy.field.add(name="min_trade_usd", number=4, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    governance = file.message_type.add(name="GovernanceEvent")
    governance.field.add(name="sequence", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    governance.field.add(
        name="policy",
        number=13,
        type=F.TYPE_MESSAGE,
        type_name=".old.ExecutionPolicy",
        label=F.LABEL_OPTIONAL,
    )
    return message_factory.GetMessages([file], pool=descriptor_pool.DescriptorPool())


@st.composite
def amounts(draw: st.DrawFn) -> str:
    """A canonical amount: up to 12 integer digits and up to 18 places, with
    its own scale ("0.10" keeps its zero)."""
    whole = draw(st.integers(min_value=0, max_value=10**12 - 1))
    places = draw(st.integers(min_value=0, max_value=18))
    if places == 0:
        return str(whole)
    fraction = draw(st.integers(min_value=0, max_value=10**places - 1))
    return f"{whole}.{fraction:0{places}d}"


def collect(count: int) -> list[str]:
    """``count`` generated amounts (hypothesis drives the generation; the
    round trips below run them in one unit of work per store)."""
    found: list[str] = []

    @settings(max_examples=count, database=None, derandomize=True)
    @given(amounts())
    def gather(text: str) -> None:
        found.append(text)

    gather()
    # The edges hypothesis may not reach in a bounded run.
    return [*found, "0", "0.000000000000000001", "999999999999.999999999999999999", "0.10"]


def test_every_amount_survives_the_wire_byte_for_byte() -> None:
    for text in collect(500):
        value = money.parse(text, "amount")
        wire = decimal_pb2.Decimal.FromString(decimal(value).SerializeToString())
        assert wire.value == text
        assert money.parse(wire.value, "amount") == value


def _execution(ids: UlidFactory) -> ExecutionRecord:
    return ExecutionRecord(
        id=ids.new(NOW),
        plan_id=ids.new(NOW),
        exchange="paper",
        state=ExecutionState.RUNNING,
        strategy=Strategy.SEQUENTIAL,
        max_parallel=1,
        safety_level="MODERATE",
        actor="alice",
        actor_kind="human",
        legs=(),
        policy=derive(None, PolicyState(), [], NOW, PolicySettings()).policy,
        portfolio_value=Decimal("175000.123456789012345678"),
        create_time=NOW,
    )


async def test_every_amount_survives_the_store_byte_for_byte(harness: Harness) -> None:
    texts = collect(300)
    ids = UlidFactory()
    execution = _execution(ids)
    orders = [
        OrderRecord(
            id=ids.new(NOW),
            execution_id=execution.id,
            client_order_id=client_order_id(execution.id, 0, i, 0),
            symbol="BTC/USDT",
            side="BUY",
            quantity=Decimal(text),
            price=Decimal(texts[-1 - i]),
            reference_price=Decimal(text),
            leg_index=0,
            slice_index=i,
            attempt=0,
            operation="PURCHASE",
            day=0,
            scheduled_time=NOW,
            state=OrderState.PENDING,
            create_time=NOW,
            update_time=NOW,
            filled=Decimal(text),
            average_price=Decimal(text),
            fee=Decimal(text),
        )
        for i, text in enumerate(texts)
    ]

    def write(uow: UnitOfWork) -> None:
        uow.executions.add(execution)
        for o in orders:
            uow.orders.add(o)
        for text in texts[:50]:
            uow.daily_notional.add("paper", NOW.date(), Decimal(text))

    await harness.store.write(write)
    stored = await harness.store.read(lambda uow: uow.orders.for_execution(execution.id))
    by_id = {o.id: o for o in stored}
    for o in orders:
        back = by_id[o.id]
        for field in ("quantity", "price", "reference_price", "filled", "average_price", "fee"):
            assert money.text(getattr(back, field)) == money.text(getattr(o, field)), field
    again = await harness.store.read(lambda uow: uow.executions.get(execution.id))
    assert again is not None
    assert money.text(again.portfolio_value) == "175000.123456789012345678"
    total = await harness.store.read(lambda uow: uow.daily_notional.get("paper", NOW.date()))
    expected = Decimal(0)
    for text in texts[:50]:
        expected = money.CONTEXT.add(expected, Decimal(text))  # 50 digits: exact here
    assert total == expected  # no float, and no rounding at 28 digits, on the way


async def test_a_database_of_floats_is_converted_exactly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(migrations._config(conn), "0006")
    engine.dispose()
    db = sqlite3.connect(tmp_path / "old.db")
    db.execute(
        "INSERT INTO executions (id, plan_id, exchange, state, strategy, max_parallel, "
        "safety_level, actor, actor_kind, state_reason, legs, policy, portfolio_value, version, "
        "created_at) VALUES ('01HZZZZZZZZZZZZZZZZZZZZZZZ', 'P1', 'paper', 'SUCCEEDED', "
        "'SEQUENTIAL', 1, 'MODERATE', 'alice', 'human', '', '[]', ?, 175000.1, 1, "
        "'2026-03-02 09:00:00')",
        # A policy as every execution stored it (its to_json form).
        (json.dumps(derive(None, PolicyState(), [], NOW, PolicySettings()).policy.to_json()),),
    )
    db.execute(
        "INSERT INTO orders (id, execution_id, client_order_id, exchange_order_id, symbol, side, "
        "quantity, price, reference_price, filled, average_price, fee, state, state_reason, "
        "leg_index, slice_index, attempt, operation, day, scheduled_at, safety, created_at, "
        "updated_at) VALUES ('01HZZZZZZZZZZZZZZZZZZZZZZY', '01HZZZZZZZZZZZZZZZZZZZZZZZ', "
        "'gx1', 'P1', 'BTC/USDT', 'BUY', 0.1, 50025.01, 50000.0, 0.1, 50025.01, 5.002501, "
        "'FILLED', '', 0, 0, 0, 'PURCHASE', 0, '2026-03-02 09:00:00', '{}', "
        "'2026-03-02 09:00:00', '2026-03-02 09:00:00')"
    )
    db.execute("INSERT INTO daily_notional VALUES ('paper', '2026-03-02', 5002.501)")
    old = old_contract()
    order_event = old["old.OrderEvent"](sequence=1)
    order_event.order.symbol, order_event.order.type = "BTC/USDT", "limit"
    order_event.order.quantity, order_event.order.price, order_event.order.fee = (
        0.1,
        50025.01,
        5.002501,
    )
    order_event.order.state = 5
    policy_event = old["old.GovernanceEvent"](sequence=2)
    policy_event.policy.cap_daily_percent, policy_event.policy.min_trade_usd = 3.0, 100.0
    for sequence, kind, payload in (
        (1, "ORDER_UPDATED", order_event.SerializeToString()),
        (2, "POLICY_CHANGED", policy_event.SerializeToString()),
    ):
        db.execute(
            "INSERT INTO events (sequence, kind, time, actor, resource, payload) "
            "VALUES (?, ?, '2026-03-02 09:00:00', 'carol', 'x', ?)",
            (sequence, kind, payload),
        )
    db.commit()
    db.close()
    store = Store(url, lambda event, sequence: b"")
    try:
        await migrations.migrate(store)
        order = await store.read(lambda uow: uow.orders.get("01HZZZZZZZZZZZZZZZZZZZZZZY"))
        assert order is not None
        exact = order.quantity, order.price, order.fee, order.reference_price
        assert [money.text(v) for v in exact] == ["0.1", "50025.01", "5.002501", "50000.0"]
        execution = await store.read(lambda uow: uow.executions.get("01HZZZZZZZZZZZZZZZZZZZZZZZ"))
        assert execution is not None and money.text(execution.portfolio_value) == "175000.1"
        day = await store.read(lambda uow: uow.daily_notional.get("paper", NOW.date()))
        assert money.text(day) == "5002.501"
        # The stored events now decode with the v1 contract, amounts intact.
        stored = dict(
            await store.read(
                lambda uow: uow.conn.execute(select(t.events.c.sequence, t.events.c.payload)).all()
            )
        )
        replayed = execution_pb2.OrderEvent.FromString(stored[1])
        o = replayed.order
        assert (o.symbol, o.type, o.state) == ("BTC/USDT", execution_pb2.ORDER_TYPE_LIMIT, 5)
        assert (o.quantity.value, o.price.value, o.fee.value) == ("0.1", "50025.01", "5.002501")
        assert not o.HasField("average_price")  # it was 0: a proto3 default, never sent
        policy = events_pb2.GovernanceEvent.FromString(stored[2]).policy
        assert (policy.cap_daily_percent, policy.min_trade_usd.value) == (3.0, "100.0")
    finally:
        await store.close()
    raw = sqlite3.connect(tmp_path / "old.db")
    kinds = raw.execute("SELECT typeof(quantity), typeof(fee) FROM orders").fetchone()
    assert kinds == ("text", "text")  # never a binary float again


@pytest.mark.parametrize("text", ["1e400", "abc", "1.2.3", "--1", "1" * 65, "NaN", "Infinity"])
def test_what_is_not_a_decimal_is_refused_naming_the_field(text: str) -> None:
    from govex_server.domain.errors import GovexError

    with pytest.raises(GovexError) as caught:
        money.parse(text, "portfolio_value_usd.value")
    assert [v.field for v in caught.value.field_violations] == ["portfolio_value_usd.value"]
