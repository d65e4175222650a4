"""``OrderRecord.changed`` makes exactly what ``dataclasses.replace`` makes:
the same record for any set of changed fields, the original untouched, an
unknown field refused; ``OrderRecord.of_values`` what the constructor makes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import OrderRecord

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
ORDER = OrderRecord(
    id="01JORDER00000000000000000A",
    execution_id="01JEXEC000000000000000000A",
    client_order_id="gx-0-0-0",
    symbol="BTC/USDT",
    side="BUY",
    quantity=Decimal("0.01"),
    price=Decimal("50150"),
    reference_price=Decimal("50000"),
    leg_index=0,
    slice_index=3,
    attempt=0,
    operation="PURCHASE",
    day=0,
    scheduled_time=NOW,
    state=OrderState.PENDING,
    create_time=NOW,
    update_time=NOW,
    safety={"passed": True},
)

ORIGINAL = dict(vars(ORDER))

# A new value for each field (of its own type).
NEW_VALUES: dict[str, Any] = {
    "id": "01JORDER00000000000000000B",
    "execution_id": "01JEXEC000000000000000000B",
    "client_order_id": "gx-0-3-1",
    "symbol": "ETH/USDT",
    "side": "SELL",
    "quantity": Decimal("0.010"),
    "price": Decimal("50149.99"),
    "reference_price": Decimal("49999"),
    "leg_index": 1,
    "slice_index": 4,
    "attempt": 1,
    "operation": "REBALANCING",
    "day": 2,
    "scheduled_time": NOW + timedelta(days=1),
    "state": OrderState.FILLED,
    "create_time": NOW + timedelta(seconds=1),
    "update_time": NOW + timedelta(seconds=2),
    "state_reason": "filled",
    "exchange_order_id": "paper-7",
    "filled": Decimal("0.01"),
    "average_price": Decimal("50025"),
    "fee": Decimal("0.50025"),
    "safety": {"passed": False},
    "send_time": NOW + timedelta(seconds=3),
}


def test_every_field_has_a_new_value_here() -> None:
    assert set(NEW_VALUES) == {f.name for f in dataclasses.fields(OrderRecord)}


@given(st.sets(st.sampled_from(sorted(NEW_VALUES))))
def test_changed_is_dataclasses_replace(names: set[str]) -> None:
    changes = {name: NEW_VALUES[name] for name in names}
    made = ORDER.changed(**changes)
    expected = dataclasses.replace(ORDER, **changes)
    assert made == expected
    assert type(made) is OrderRecord
    # Every field, by identity: nothing converted, unchanged fields shared.
    for f in dataclasses.fields(OrderRecord):
        assert getattr(made, f.name) is getattr(expected, f.name), f.name
    assert made.name == expected.name
    # The original is untouched, and the new record is as frozen as it.
    assert vars(ORDER) == ORIGINAL
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.state = OrderState.CANCELLED  # type: ignore[misc]


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError, match="no field filed"):
        ORDER.changed(filed=Decimal(1))


def test_of_values_is_the_constructor() -> None:
    values = [NEW_VALUES[f.name] for f in dataclasses.fields(OrderRecord)]
    made = OrderRecord.of_values(values)
    assert made == OrderRecord(*values)
    assert [getattr(made, f.name) for f in dataclasses.fields(OrderRecord)] == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.attempt = 2  # type: ignore[misc]
    # Every field or nothing: a value short is refused, not left unset.
    with pytest.raises(ValueError):
        OrderRecord.of_values(values[:-1])
