"""Execution rules without I/O: order states and client order ids, legs and
their classification, the safety validator at each level, the schedule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from govex_server.domain.errors import GovexError
from govex_server.domain.execution.legs import (
    ExecutionKind,
    LegPlan,
    Side,
    blocked_by,
    compute_legs,
    mode_refusal,
    unreached,
)
from govex_server.domain.execution.orders import (
    TERMINAL,
    TRANSITIONS,
    OrderState,
    can_move,
    client_order_id,
    execution_prefix,
    move,
    next_fill,
    parse_client_order_id,
)
from govex_server.domain.execution.safety import (
    Level,
    Limits,
    Market,
    ProposedOrder,
    Severity,
    Verdict,
    validate,
)
from govex_server.domain.execution.schedule import days_needed, schedule
from govex_server.domain.freezes import Freeze, FreezeType, Operation
from govex_server.domain.plans import Target
from govex_server.domain.policy import PolicyMode

D = Decimal
OS = OrderState
EXEC = "01HZZZZZZZZZZZ0123456789AB"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# ------------------------------------------------------------------ orders


def test_terminal_states_go_nowhere() -> None:
    for state in TERMINAL:
        assert state.terminal
        assert not TRANSITIONS[state]


@pytest.mark.parametrize(("a", "b"), list(itertools.product(OrderState, OrderState)))
def test_every_pair_of_states(a: OrderState, b: OrderState) -> None:
    allowed = b in TRANSITIONS[a]
    assert can_move(a, b) is allowed
    if allowed:
        assert move("o", a, b) is b
    else:
        with pytest.raises(GovexError) as caught:
            move("o", a, b)
        assert caught.value.reason == "ORDER_STATE"


def test_the_happy_path_and_the_unknown_outcome() -> None:
    path = [OS.PENDING, OS.SUBMITTED, OS.OPEN, OS.PARTIALLY_FILLED, OS.FILLED]
    for a, b in itertools.pairwise(path):
        assert can_move(a, b)
    # A send whose outcome is unknown is resolved by a lookup, to any outcome.
    assert can_move(OS.SUBMITTED, OS.UNKNOWN)
    for outcome in (OS.OPEN, OS.FILLED, OS.REJECTED, OS.CANCELLED):
        assert can_move(OS.UNKNOWN, outcome)
    assert not can_move(OS.UNKNOWN, OS.PENDING)  # never resent under the same row


def test_client_order_ids_are_deterministic_short_and_parseable() -> None:
    first = client_order_id(EXEC, 3, 7, 0)
    assert first == client_order_id(EXEC, 3, 7, 0)
    assert len(first) <= 36
    assert first.startswith(execution_prefix(EXEC))
    assert client_order_id(EXEC, 3, 7, 1) != first
    key = parse_client_order_id(first)
    assert key is not None
    assert (key.leg, key.slice, key.attempt) == (3, 7, 0)
    assert parse_client_order_id("someone-elses-order") is None
    with pytest.raises(ValueError):
        client_order_id("not-an-id", 0, 0, 0)


def test_fills_only_grow_and_never_exceed_the_quantity() -> None:
    assert next_fill("o", D("0.5"), D("0.7"), D(1)) == D("0.7")
    assert next_fill("o", D("0.5"), D(1), D(1)) == D(1)
    with pytest.raises(GovexError):
        next_fill("o", D("0.7"), D("0.69999999"), D(1))
    with pytest.raises(GovexError):
        next_fill("o", D("0.5"), D("1.00000001"), D(1))


# -------------------------------------------------------------------- legs

PRICES = {"BTC": D(50_000), "ETH": D(2_500), "SOL": D(100)}


def rebalancing() -> LegPlan:
    """100k: BTC 60k (60%), USDT 40k; target BTC 40, ETH 30, USDT 30."""
    return compute_legs(
        [Target("BTC", 40), Target("ETH", 30), Target("USDT", 30)],
        {"BTC": D("1.2"), "USDT": D(40_000)},
        PRICES,
        "USDT",
        1.0,
        D(100),
    )


def test_rebalancing_sells_first_and_buys_are_purchases() -> None:
    # 100k: BTC 60k (60%), USDT 40k; target BTC 40, ETH 30, USDT 30.
    plan = rebalancing()
    assert plan.kind is ExecutionKind.REBALANCING
    assert plan.portfolio_value == D(100_000)
    assert [(leg.asset, leg.side) for leg in plan.legs] == [("BTC", Side.SELL), ("ETH", Side.BUY)]
    btc, eth = plan.legs
    # Exact: no binary fraction anywhere between the holdings and the legs.
    assert btc.notional == D(20_000)
    assert btc.quantity == D("0.4")
    assert btc.operation is Operation.SELL_TO_STABLES
    assert eth.operation is Operation.PURCHASE
    assert eth.requires == {Operation.PURCHASE, Operation.REBALANCING}
    assert eth.quantity == D(12)


def test_rotation_keeps_the_stable_share() -> None:
    plan = compute_legs(
        [Target("ETH", 50), Target("USDT", 50)],
        {"BTC": D(1), "USDT": D(50_000)},
        PRICES,
        "USDT",
        1.0,
        D(100),
    )
    assert plan.kind is ExecutionKind.ROTATION
    assert {leg.operation for leg in plan.legs} == {Operation.ROTATION}


def test_de_risk_only_sells_to_stables() -> None:
    plan = compute_legs(
        [Target("BTC", 20), Target("USDT", 80)],
        {"BTC": D(1), "USDT": D(50_000)},
        PRICES,
        "USDT",
        1.0,
        D(100),
    )
    assert plan.kind is ExecutionKind.DE_RISK
    assert [leg.operation for leg in plan.legs] == [Operation.SELL_TO_STABLES]


def test_hedge_targets_make_hedge_legs_and_leave_the_kind_to_the_rest() -> None:
    holdings = {"BTC": D(1), "USDT": D(50_000)}
    prices = {**PRICES, "BTCDOWN": D(10)}
    only_hedge = compute_legs(
        [Target("BTC", 50), Target("BTCDOWN", 5, hedge=True), Target("USDT", 45)],
        holdings,
        prices,
        "USDT",
        1.0,
        D(100),
    )
    [leg] = only_hedge.legs
    assert (leg.asset, leg.side, leg.operation) == ("BTCDOWN", Side.BUY, Operation.HEDGE)
    assert leg.requires == {Operation.HEDGE}
    assert only_hedge.kind is ExecutionKind.HEDGE
    # A hedge beside a sale: the sale still makes the execution a de-risking,
    # and the hedge leg stays HEDGE (never a purchase).
    mixed = compute_legs(
        [Target("BTC", 30), Target("BTCDOWN", 5, hedge=True), Target("USDT", 65)],
        holdings,
        prices,
        "USDT",
        1.0,
        D(100),
    )
    assert mixed.kind is ExecutionKind.DE_RISK
    assert {leg.asset: leg.operation for leg in mixed.legs} == {
        "BTC": Operation.SELL_TO_STABLES,
        "BTCDOWN": Operation.HEDGE,
    }
    # Unmarked, the same asset is a plain purchase.
    plain = compute_legs(
        [Target("BTC", 50), Target("BTCDOWN", 5), Target("USDT", 45)],
        holdings,
        prices,
        "USDT",
        1.0,
        D(100),
    )
    assert plain.legs[0].operation is Operation.PURCHASE


@pytest.mark.parametrize(
    ("targets", "refused"),
    [
        ((("BTC", 30.0, False), ("USDT", 70.0, False)), False),  # sells only
        ((("ETH", 50.0, False), ("USDT", 50.0, False)), False),  # rotation
        ((("BTC", 50.0, False), ("BTCDOWN", 5.0, True), ("USDT", 45.0, False)), False),  # hedge
        ((("BTC", 60.0, False), ("USDT", 40.0, False)), True),  # purchase
        ((("BTC", 30.0, False), ("ETH", 30.0, False), ("USDT", 40.0, False)), True),  # rebalancing
    ],
)
def test_mode_freeze_refuses_only_what_buys_risk(
    targets: tuple[tuple[str, float, bool], ...], refused: bool
) -> None:
    legs = compute_legs(
        [Target(a, w, hedge=h) for a, w, h in targets],
        {"BTC": D(1), "USDT": D(50_000)},
        {**PRICES, "BTCDOWN": D(10)},
        "USDT",
        1.0,
        D(100),
    )
    reason = mode_refusal(PolicyMode.FREEZE, legs)
    assert (reason is not None) == refused, (legs.kind, reason)
    if reason is not None:
        assert "buys risk" in reason and "BUY" in reason
    for mode in (PolicyMode.SLOW, PolicyMode.NORMAL, PolicyMode.AGGRESSIVE):
        assert mode_refusal(mode, legs) is None


def test_what_the_account_cannot_trade_is_named() -> None:
    legs = compute_legs(
        [Target("BTC", 40), Target("SOL", 10), Target("USDC", 10), Target("USDT", 40)],
        {"BTC": D(1), "USDT": D(50_000)},
        PRICES,
        "USDT",
        1.0,
        D(100),
    )
    assert legs.unreached_stables == ("USDC",)
    reasons = unreached(legs, {"BTC/USDT"}, "USDT", "exchanges/x")
    assert reasons == [
        "leg 1 (BUY SOL/USDT): no SOL/USDT market on exchanges/x",
        "USDC: a stable other than the account's quote USDT; legs trade against USDT only, "
        "so its target cannot be reached",
    ]
    assert len(unreached(legs, {"BTC/USDT", "SOL/USDT"}, "USDT", "exchanges/x")) == 1


def test_no_trade_zone_and_min_trade_skip_with_a_reason() -> None:
    plan = compute_legs(
        [Target("BTC", 49.5), Target("SOL", 0.05), Target("USDT", 50.45)],
        {"BTC": D(1), "USDT": D(50_000)},
        PRICES,
        "USDT",
        1.0,
        D(100),
    )
    reasons = {leg.asset: leg.skip_reason for leg in plan.legs}
    assert "no-trade zone" in reasons["BTC"]
    assert "no-trade zone" in reasons["SOL"]
    assert plan.kind is ExecutionKind.NOTHING
    big_min = compute_legs(
        [Target("BTC", 45), Target("USDT", 55)],
        {"BTC": D(1), "USDT": D(50_000)},
        PRICES,
        "USDT",
        1.0,
        D(10_000),
    )
    assert "minimum trade" in big_min.legs[0].skip_reason


def test_missing_price_or_empty_account_is_refused() -> None:
    with pytest.raises(GovexError) as caught:
        compute_legs([Target("DOGE", 100)], {"USDT": D(10)}, PRICES, "USDT", 1, D(10))
    assert caught.value.reason == "NO_PRICE"
    with pytest.raises(GovexError) as caught:
        compute_legs([Target("BTC", 100)], {}, PRICES, "USDT", 1, D(10))
    assert caught.value.reason == "EMPTY_PORTFOLIO"


def freeze(kind: FreezeType) -> Freeze:
    return Freeze("01HZZZZZZZZZZZZZZZZZZZZZZZ", kind, "t", "op", NOW, NOW + timedelta(hours=1))


def test_freezes_block_legs_by_what_they_require() -> None:
    plan = rebalancing()
    sell, buy = plan.legs
    s3 = [freeze(FreezeType.S3_ALERT_FREEZE)]
    # S3 forbids rebalancing: a rebalancing's sells stop with its buys.
    assert blocked_by(sell, s3, NOW) == s3
    assert blocked_by(buy, s3, NOW) == s3
    de_risk = compute_legs(
        [Target("BTC", 20), Target("USDT", 80)],
        {"BTC": D(1), "USDT": D(50_000)},
        PRICES,
        "USDT",
        1.0,
        D(100),
    )
    assert blocked_by(de_risk.legs[0], s3, NOW) == []  # selling to stables goes on
    full = [freeze(FreezeType.FULL_FREEZE)]
    assert blocked_by(sell, full, NOW) == full
    assert blocked_by(sell, full, NOW + timedelta(hours=2)) == []  # expired


# ------------------------------------------------------------------ safety

LIMITS = Limits(
    max_order_notional=D(10_000),
    daily_notional_limit=D(50_000),
    price_collar_bps=100,
    allowed_symbols=frozenset({"BTC/USDT", "ETH/USDT"}),
    live_trading_enabled=False,
)
MARKET = Market(amount_step=D("0.0001"), price_step=D("0.01"), min_notional=D(10))


NOTHING, FREE_QUOTE, FREE_BASE = D(0), D(100_000), D(10)


def order(**changes: object) -> ProposedOrder:
    base = {
        "client_order_id": "gxA",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "quantity": D("0.1"),
        "price": D(50_000),
        "reference_price": D(50_000),
        "sandbox": True,
    }
    base.update(changes)
    return ProposedOrder(**base)  # type: ignore[arg-type]


def check(
    o: ProposedOrder,
    level: Level = Level.MODERATE,
    daily_used: Decimal = NOTHING,
    free_quote: Decimal = FREE_QUOTE,
    free_base: Decimal = FREE_BASE,
    known: frozenset[str] = frozenset(),
) -> Verdict:
    return validate(o, LIMITS, MARKET, daily_used, free_quote, free_base, known, level)


def rules(verdict: Verdict) -> dict[str, str]:
    return {i.rule: i.severity.value for i in verdict.issues}


def test_a_clean_order_passes_with_100() -> None:
    v = check(order())
    assert (v.passed, v.score, v.issues) == (True, 100, ())


@pytest.mark.parametrize(
    ("changes", "context", "rule"),
    [
        ({"quantity": D("0.3")}, {}, "MAX_ORDER_NOTIONAL"),
        ({}, {"daily_used": D(46_000)}, "DAILY_NOTIONAL"),
        ({}, {"free_quote": D(1_000)}, "BALANCE"),
        # One unit of the last decimal short is short: no tolerance.
        ({}, {"free_quote": D("5004.99999999")}, "BALANCE"),
        ({"side": "SELL", "quantity": D("0.1")}, {"free_base": D("0.05")}, "BALANCE"),
        ({"quantity": D("0.00015")}, {}, "PRECISION"),
        ({"price": D("50000.005")}, {}, "PRECISION"),
        ({"quantity": D("0.0001"), "price": D(50), "reference_price": D(50)}, {}, "MIN_NOTIONAL"),
        ({"price": D(51_000)}, {}, "PRICE_COLLAR"),
        ({"symbol": "SOL/USDT"}, {}, "ALLOWED_SYMBOL"),
        ({}, {"known": frozenset({"gxA"})}, "DUPLICATE"),
        ({"sandbox": False}, {}, "LIVE_TRADING"),
    ],
)
def test_each_rule_fails_the_order(
    changes: dict[str, object], context: dict[str, Any], rule: str
) -> None:
    v = check(order(**changes), **context)
    assert rules(v)[rule] == "ERROR"
    assert not v.passed
    assert v.score <= 70


def test_levels_and_score() -> None:
    near_limit = order(quantity=D("0.17"))  # 8,500: over 80% of the per-order maximum
    moderate = check(near_limit, Level.MODERATE)
    assert rules(moderate) == {"MAX_ORDER_NOTIONAL": "WARNING"}
    assert (moderate.passed, moderate.score) == (True, 90)
    strict = check(near_limit, Level.STRICT)
    assert (strict.passed, strict.score) == (False, 90)
    permissive = check(order(quantity=D("0.3"), symbol="SOL/USDT"), Level.PERMISSIVE)
    assert permissive.passed  # the soft rules are not run
    hard = check(order(sandbox=False), Level.PERMISSIVE)
    assert not hard.passed
    many = check(
        order(quantity=D("0.3"), symbol="SOL/USDT", price=D(52_000), sandbox=False),
        free_quote=D(10),
        known=frozenset({"gxA"}),
    )
    assert many.score == 0
    assert all(i.severity is Severity.ERROR for i in many.issues)


# ---------------------------------------------------------------- schedule


def test_multi_day_execution_under_a_5_percent_cap() -> None:
    plan = rebalancing()
    # 50k to trade at 5k a day: 10 days; sells (BTC 20k) fill the first 4.
    slices = schedule(plan.legs, plan.portfolio_value, 0.05, 6, D(100), NOW)
    assert days_needed(slices) == 10
    per_day: dict[int, Decimal] = {}
    for s in slices:
        per_day[s.day] = per_day.get(s.day, D(0)) + s.notional
    assert all(v <= 5_000 for v in per_day.values())
    assert sum(per_day.values()) == D(50_000)  # the slices add up exactly
    first_buy_day = min(s.day for s in slices if s.leg_index == 1)
    last_sell_day = max(s.day for s in slices if s.leg_index == 0)
    assert last_sell_day <= first_buy_day
    # Day 1 starts at the next UTC midnight; slices ramp over 6 hours.
    day1 = sorted(s.scheduled_time for s in slices if s.day == 1)
    assert day1[0] == datetime(2026, 3, 3, tzinfo=UTC)
    assert day1[-1] < datetime(2026, 3, 3, 6, tzinfo=UTC)


def test_ramp_spreads_slices_and_used_today_counts() -> None:
    plan = compute_legs(
        [Target("BTC", 45), Target("USDT", 55)],
        {"BTC": D(1), "USDT": D(50_000)},
        PRICES,
        "USDT",
        1,
        D(100),
    )
    slices = schedule(plan.legs, plan.portfolio_value, 0.5, 4, D(100), NOW)
    assert len(slices) == 4
    assert [s.scheduled_time for s in slices] == [NOW + timedelta(hours=h) for h in range(4)]
    assert sum(s.notional for s in slices) == D(5_000)
    tight = schedule(plan.legs, plan.portfolio_value, 0.5, 4, D(100), NOW, used_today=D(49_000))
    assert sum(s.notional for s in tight if s.day == 0) == D(1_000)


def test_no_sliver_under_the_minimum_trade_is_scheduled() -> None:
    plan = rebalancing()
    # 20,050 a day: the sells take 20,000, leaving a 50 sliver for the buys.
    slices = schedule(plan.legs, plan.portfolio_value, 0.2005, 1, D(100), NOW)
    assert all(s.notional >= 100 for s in slices)
    assert sum(s.notional for s in slices) == D(50_000)


def test_limit_orders_never_allow_more_slippage_than_the_limit() -> None:
    from govex_server.domain.execution.pricing import limit_order

    market = Market(amount_step=D("0.001"), price_step=D("0.5"), min_notional=D(10))
    quantity, price = limit_order(Side.BUY, D(1_000), D("100.3"), 50, market)
    assert str(price) == "100.5"  # 100.8015 rounded down, towards the reference
    assert str(quantity) == "9.97"  # 9.9700... cut down onto the amount step
    quantity, price = limit_order(Side.SELL, D(1_000), D("100.3"), 50, market)
    assert str(price) == "100"  # 99.7985 rounded up, towards the reference
    quantity, price = limit_order(Side.BUY, D(1_000), D(100), 10, Market(D(0), D(0), D(0)))
    assert quantity == D(10)
    assert price == D("100.1")  # no step: exactly as computed
    # Values exactly on their steps stay there: in binary floats 0.3 / 0.1 is
    # 2.9999999999999996, which rounds down to 0.2 (and 0.9 / 0.3 to 2.9).
    tenths = Market(D("0.1"), D("0.1"), D(0))
    quantity, price = limit_order(Side.BUY, D("0.9"), D("0.3"), 0, tenths)
    assert (str(quantity), str(price)) == ("3", "0.3")


def test_no_sliver_is_left_behind_for_the_next_day() -> None:
    plan = rebalancing()
    # The day's budget falls 3e-8 short of the sells (20,000): taking it all
    # would leave a 0.00000003 slice for tomorrow, which no exchange accepts.
    cap = float(D("20000.00000000") / plan.portfolio_value) - 3e-13
    slices = schedule(plan.legs, plan.portfolio_value, cap, 1, D(100), NOW)
    assert all(s.notional >= 100 for s in slices), min(s.notional for s in slices)
    assert sum(s.notional for s in slices) == D(50_000)
