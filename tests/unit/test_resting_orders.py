"""Resting orders and the price step: pure rules the runner and ValidatePlan call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from govex_server.domain.execution.legs import Side
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.pricing import limit_order, step_refusal
from govex_server.domain.execution.records import ExecutionState, OrderRecord, outcome
from govex_server.domain.execution.resting import RestingRule
from govex_server.domain.execution.safety import Market

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
D = Decimal


def test_an_order_is_stale_after_the_ttl_counted_from_its_send() -> None:
    rule = RestingRule(timedelta(seconds=120), 5)
    assert not rule.stale(NOW, NOW + timedelta(seconds=119))
    assert rule.stale(NOW, NOW + timedelta(seconds=120))
    assert not rule.stale(None, NOW + timedelta(days=9))  # never sent: never stale


def test_what_is_left_is_sent_again_up_to_max_attempts() -> None:
    rule = RestingRule(timedelta(seconds=120), 3)
    assert rule.next_attempt(0, D("0.5")) == 1
    assert rule.next_attempt(1, D("0.5")) == 2
    assert rule.next_attempt(2, D("0.5")) is None  # three sends in all
    assert rule.next_attempt(0, D(0)) is None  # filled while it was cancelled
    assert "after 3 attempts of 120s" in rule.exhausted(2)
    with pytest.raises(ValueError, match="max_attempts"):
        RestingRule(timedelta(seconds=1), 0)
    with pytest.raises(ValueError, match="order_ttl_seconds"):
        RestingRule(timedelta(0), 5)


def test_a_price_step_larger_than_the_slippage_room_is_refused() -> None:
    coarse = Market(D(1), D("0.01"), D("0.1"))  # XRP at 0.5: 30 bps is 0.0015
    why = step_refusal(D("0.5"), 30, coarse)
    assert why is not None and "one price step (0.01)" in why and "0.0015" in why
    # The limit it would get is the reference itself: it could never cross.
    assert limit_order(Side.BUY, D(100), D("0.5"), 30, coarse)[1] == D("0.5")
    fine = Market(D(1), D("0.0001"), D("0.1"))
    assert step_refusal(D("0.5"), 30, fine) is None
    assert limit_order(Side.BUY, D(100), D("0.5"), 30, fine)[1] > D("0.5")
    assert step_refusal(D("0.5"), 200, coarse) is None  # 200 bps is 0.01: one step


def _order(attempt: int, state: OrderState, filled: str) -> OrderRecord:
    return OrderRecord(
        id=f"o{attempt}",
        execution_id="e",
        client_order_id=f"c{attempt}",
        symbol="BTC/USDT",
        side="BUY",
        quantity=D(1),
        price=D(1),
        reference_price=D(1),
        leg_index=0,
        slice_index=0,
        attempt=attempt,
        operation="PURCHASE",
        day=0,
        scheduled_time=NOW,
        state=state,
        create_time=NOW,
        update_time=NOW,
        filled=D(filled),
    )


def test_a_slice_that_traded_on_an_earlier_attempt_partially_filled() -> None:
    orders = [_order(0, OrderState.CANCELLED, "0.5"), _order(1, OrderState.CANCELLED, "0")]
    assert outcome(orders, "")[0] is ExecutionState.PARTIALLY_FILLED
    orders = [_order(0, OrderState.CANCELLED, "0.5"), _order(1, OrderState.FILLED, "0.5")]
    assert outcome(orders, "")[0] is ExecutionState.SUCCEEDED
