"""An execution keeps the legs and the policy it started with as typed
snapshots; their stored JSON round-trips exactly, and legs stored before the
price was kept get it back from their notional and quantity."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from govex_server.domain.execution.legs import Leg, Side
from govex_server.domain.freezes import Operation
from govex_server.domain.policy import PolicyState, derive
from govex_server.domain.policy_settings import PolicySettings

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
amounts = st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False)


@given(
    amounts,
    amounts,
    amounts,
    st.sampled_from(list(Side)),
    st.sets(st.sampled_from(list(Operation)), min_size=1),
    st.text(max_size=20),
)
def test_a_leg_round_trips_through_its_stored_form(
    notional: Decimal,
    quantity: Decimal,
    price: Decimal,
    side: Side,
    requires: set[Operation],
    skip: str,
) -> None:
    leg = Leg(
        index=3,
        asset="ETH",
        symbol="ETH/USDT",
        side=side,
        current_percent=14.29,
        target_percent=20.0,
        notional=notional,
        quantity=quantity,
        price=price,
        operation=min(requires, key=lambda op: op.value),
        requires=frozenset(requires),
        skip_reason=skip,
    )
    assert Leg.from_json(leg.to_json()) == leg


def test_a_leg_stored_without_its_price_gets_it_back() -> None:
    old = {
        "index": 0,
        "asset": "BTC",
        "symbol": "BTC/USDT",
        "side": "SELL",
        "operation": "SELL_TO_STABLES",
        "requires": ["REBALANCING", "SELL_TO_STABLES"],
        "current_percent": 28.57,
        "target_percent": 20.0,
        "notional": "15000",
        "quantity": "0.3",
        "skip_reason": "",
    }
    leg = Leg.from_json(old)
    assert (leg.price, leg.side, leg.requires) == (
        Decimal(50_000),
        Side.SELL,
        frozenset({Operation.REBALANCING, Operation.SELL_TO_STABLES}),
    )


def test_the_policy_snapshot_round_trips() -> None:
    policy = derive(None, PolicyState(), [], NOW, PolicySettings()).policy
    assert type(policy).from_json(policy.to_json()) == policy


def test_the_refusal_reason_is_the_weightiest_blocker() -> None:
    from govex_server.domain.execution.blockers import Blocker, refusal_reason

    assert refusal_reason([]) == "PLAN_STATE"
    assert refusal_reason([Blocker.SAFETY_REJECTED, Blocker.FROZEN]) == "FROZEN"
    assert refusal_reason([Blocker.PRICE_STEP, Blocker.TARGET_UNREACHABLE]) == "TARGET_UNREACHABLE"
    assert refusal_reason([Blocker.PLAN_STATE, Blocker.SAFETY_REJECTED]) == "SAFETY_REJECTED"
