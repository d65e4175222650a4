"""An order's proto form and its stored event say what the record says,
field by field, for any order: every state, side and operation, any amounts
and times, with or without a safety verdict. (The Order is filled in place,
inside the event; this reads both back from their bytes.)"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2
from govex_server.api.execution_convert import order_event_payload, order_record_to_pb
from govex_server.domain import money
from govex_server.domain.execution.legs import Side
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import ExecutionState, OrderRecord
from govex_server.domain.freezes import Operation
from tests.unit.test_order_changed import ORDER

amounts = st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
verdicts = st.sampled_from(
    [
        {},
        {"passed": True, "score": 100, "level": "MODERATE", "issues": []},
        {
            "passed": False,
            "score": 40,
            "level": "STRICT",
            "issues": [{"rule": "max_order_notional", "severity": "ERROR", "message": "too big"}],
        },
    ]
)


@st.composite
def orders(draw: st.DrawFn) -> OrderRecord:
    return ORDER.changed(
        state=draw(st.sampled_from(list(OrderState))),
        side=draw(st.sampled_from([s.value for s in Side])),
        operation=draw(st.sampled_from([o.value for o in Operation])),
        quantity=draw(amounts),
        price=draw(amounts),
        filled=draw(amounts),
        average_price=draw(amounts),
        fee=draw(amounts),
        create_time=draw(times),
        update_time=draw(times),
        state_reason=draw(st.text(max_size=20)),
        exchange_order_id=draw(st.text(max_size=20)),
        leg_index=draw(st.integers(0, 50)),
        slice_index=draw(st.integers(0, 500)),
        attempt=draw(st.integers(0, 9)),
        safety=draw(verdicts),
    )


def assert_says(out: execution_pb2.Order, o: OrderRecord) -> None:
    assert out.name == o.name
    assert out.client_order_id == o.client_order_id
    assert out.exchange_order_id == o.exchange_order_id
    assert out.symbol == o.symbol
    assert execution_pb2.OrderSide.Name(out.side) == f"ORDER_SIDE_{o.side}"
    assert out.type == execution_pb2.ORDER_TYPE_LIMIT
    amounts_of: tuple[
        tuple[Literal["quantity", "price", "filled_quantity", "average_price", "fee"], Decimal], ...
    ] = (
        ("quantity", o.quantity),
        ("price", o.price),
        ("filled_quantity", o.filled),
        ("average_price", o.average_price),
        ("fee", o.fee),
    )
    for field, amount in amounts_of:
        assert out.HasField(field), field
        assert Decimal(getattr(out, field).value) == amount, field
        assert getattr(out, field).value == money.text(amount), field
    assert execution_pb2.OrderState.Name(out.state) == f"ORDER_STATE_{o.state.value}"
    assert out.state_reason == o.state_reason
    assert (out.leg_index, out.slice_index, out.attempt) == (o.leg_index, o.slice_index, o.attempt)
    assert out.create_time.ToDatetime(tzinfo=UTC) == o.create_time
    assert out.update_time.ToDatetime(tzinfo=UTC) == o.update_time
    assert freeze_pb2.Operation.Name(out.operation) == f"OPERATION_{o.operation}"
    assert out.HasField("safety") == bool(o.safety)
    if o.safety:
        assert out.safety.passed == o.safety["passed"]
        assert out.safety.score == o.safety["score"]
        assert [i.rule for i in out.safety.issues] == [i["rule"] for i in o.safety["issues"]]


@given(orders())
def test_an_order_in_proto_says_what_its_record_says(o: OrderRecord) -> None:
    out = execution_pb2.Order.FromString(order_record_to_pb(o).SerializeToString())
    assert_says(out, o)


@given(orders(), st.sampled_from(list(ExecutionState)), st.integers(1, 2**40), times)
def test_an_order_event_carries_the_order_its_sequence_time_and_execution_state(
    o: OrderRecord, state: ExecutionState, sequence: int, when: datetime
) -> None:
    event = execution_pb2.OrderEvent.FromString(order_event_payload(o, state, sequence, when))
    assert event.sequence == sequence
    assert event.time.ToDatetime(tzinfo=UTC) == when
    assert execution_pb2.ExecutionState.Name(event.execution_state) == (
        f"EXECUTION_STATE_{state.value}"
    )
    assert_says(event.order, o)
    # The same Order as the API gives (GetExecution, ListOrders).
    assert event.order == order_record_to_pb(o)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        order_record_to_pb(ORDER.changed(update_time=datetime(2026, 1, 1)))
