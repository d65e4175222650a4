"""From a plan's targets and the exchange's holdings and prices to legs, each
classified for the freeze checks (DESIGN.md §3 "Operation classification")."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from govex_server.domain import money
from govex_server.domain.errors import failed_precondition
from govex_server.domain.freezes import Freeze, Operation, allows
from govex_server.domain.plans import Target
from govex_server.domain.policy import PolicyMode

DEFAULT_STABLES = frozenset({"USDT", "USDC", "DAI", "TUSD", "FDUSD", "USD", "BUSD", "PYUSD"})


class Side(enum.Enum):
    """Buy or sell the leg's asset against the quote currency."""

    BUY = "BUY"
    SELL = "SELL"


class ExecutionKind(enum.Enum):
    """What the execution as a whole is."""

    ROTATION = "ROTATION"
    DE_RISK = "DE_RISK"
    REBALANCING = "REBALANCING"
    # Only hedge legs are traded.
    HEDGE = "HEDGE"
    NOTHING = "NOTHING"


@dataclass(frozen=True)
class Leg:
    """The trade that moves one non-stable asset towards its target."""

    index: int
    asset: str
    symbol: str
    side: Side
    current_percent: float
    target_percent: float
    notional: Decimal
    quantity: Decimal
    price: Decimal
    operation: Operation
    # Every operation the freezes must allow for this leg to be sent.
    requires: frozenset[Operation]
    skip_reason: str = ""

    @property
    def skipped(self) -> bool:
        """True when the policy skipped the leg."""
        return bool(self.skip_reason)

    def to_json(self) -> dict[str, Any]:
        """The stored form (an execution keeps the legs it started with)."""
        return {
            "index": self.index,
            "asset": self.asset,
            "symbol": self.symbol,
            "side": self.side.value,
            "operation": self.operation.value,
            "requires": sorted(op.value for op in self.requires),
            "current_percent": self.current_percent,
            "target_percent": self.target_percent,
            "notional": money.text(self.notional),
            "quantity": money.text(self.quantity),
            "price": money.text(self.price),
            "skip_reason": self.skip_reason,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Leg:
        """The inverse of ``to_json``; legs stored before the price was kept
        get it back from their notional and quantity."""
        notional, quantity = money.exact(data["notional"]), money.exact(data["quantity"])
        if "price" in data:
            price = money.exact(data["price"])
        else:
            price = money.div(notional, quantity) if quantity > 0 else money.ZERO
        return Leg(
            index=data["index"],
            asset=data["asset"],
            symbol=data["symbol"],
            side=Side(data["side"]),
            current_percent=data["current_percent"],
            target_percent=data["target_percent"],
            notional=notional,
            quantity=quantity,
            price=price,
            operation=Operation(data["operation"]),
            requires=frozenset(Operation(op) for op in data["requires"]),
            skip_reason=data["skip_reason"],
        )


@dataclass(frozen=True)
class LegPlan:
    """The legs of an execution and what it is as a whole."""

    kind: ExecutionKind
    portfolio_value: Decimal
    stable_percent_now: float
    stable_percent_target: float
    legs: tuple[Leg, ...]
    # Stables other than the quote whose target differs from the holding by
    # the no-trade zone or more: no leg trades them (every leg is against the
    # quote), so the plan could never reach its targets.
    unreached_stables: tuple[str, ...] = ()

    @property
    def active_legs(self) -> tuple[Leg, ...]:
        """Legs that are traded (not skipped), sells first."""
        return tuple(leg for leg in self.legs if not leg.skipped)


def compute_legs(
    targets: Iterable[Target],
    holdings: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    quote: str,
    no_trade_threshold_percent: float,
    min_trade_usd: Decimal,
    stables: frozenset[str] = DEFAULT_STABLES,
) -> LegPlan:
    """Legs from the targets against the holdings valued at ``prices`` (in the
    quote currency; stables count 1). Deltas inside the no-trade zone and legs
    under the minimum trade are kept but skipped, with the reason. Sells come
    before the buys they fund. Money is exact: a weight (a float percentage)
    enters it through ``money.from_ratio``; notionals are cut down to the
    quote step and quantities to ``money.QUANTITY_STEP``."""
    targets = tuple(targets)
    target = {t.asset: t.weight_percent for t in targets}
    hedges = {t.asset for t in targets if t.hedge}
    hundred = Decimal(100)

    def price_of(asset: str) -> Decimal:
        if asset in stables or asset == quote:
            return money.ONE
        price = prices.get(asset)
        if price is None or not price.is_finite() or price <= 0:
            raise failed_precondition(
                "NO_PRICE", asset, f"no usable {asset}/{quote} price from the exchange"
            )
        return price

    assets = sorted(set(target) | {a for a, q in holdings.items() if q > 0})
    values = {a: money.mul(holdings.get(a, money.ZERO), price_of(a)) for a in assets}
    total = sum(values.values(), money.ZERO)
    if total <= 0:
        raise failed_precondition("EMPTY_PORTFOLIO", "portfolio", "the account holds nothing")
    exact_current = {a: money.div(values[a] * hundred, total) for a in assets}
    current = {a: float(exact_current[a]) for a in assets}
    stable_now = float(
        sum((exact_current[a] for a in assets if a in stables or a == quote), money.ZERO)
    )
    stable_target = math.fsum(target.get(a, 0.0) for a in assets if a in stables or a == quote)

    raw = []
    for asset in assets:
        if asset in stables or asset == quote:
            continue  # stables are the other side of every leg
        exact_delta = money.from_ratio(target.get(asset, 0.0)) - exact_current[asset]
        if exact_delta == 0:
            continue
        delta = float(exact_delta)
        notional = money.notional(money.div(abs(exact_delta) * total, hundred))
        skip = ""
        if abs(delta) < no_trade_threshold_percent:
            skip = (
                f"inside the no-trade zone ({abs(delta):.2f}% < {no_trade_threshold_percent:.2f}%)"
            )
        elif notional < min_trade_usd:
            skip = f"below the minimum trade ({notional:.2f} < {min_trade_usd:.2f})"
        raw.append((asset, Side.BUY if delta > 0 else Side.SELL, delta, notional, skip))

    # What the execution is, from its legs that are not hedges: a hedge
    # leg is classified HEDGE whatever the others do.
    traded = [r for r in raw if not r[4] and r[0] not in hedges]
    buys = any(r[1] is Side.BUY for r in traded)
    sells = any(r[1] is Side.SELL for r in traded)
    if not traded:
        hedging = any(not r[4] for r in raw)
        kind = ExecutionKind.HEDGE if hedging else ExecutionKind.NOTHING
    elif sells and not buys:
        kind = ExecutionKind.DE_RISK
    elif abs(stable_target - stable_now) <= no_trade_threshold_percent and buys and sells:
        kind = ExecutionKind.ROTATION
    else:
        kind = ExecutionKind.REBALANCING

    # Sells before buys; bigger first within a side.
    raw.sort(key=lambda r: (r[1] is Side.BUY, -r[3], r[0]))
    legs = []
    for index, (asset, side, _delta, notional, skip) in enumerate(raw):
        price = price_of(asset)
        operation, requires = _classify(kind, side, asset in hedges)
        legs.append(
            Leg(
                index=index,
                asset=asset,
                symbol=f"{asset}/{quote}",
                side=side,
                current_percent=current[asset],
                target_percent=target.get(asset, 0.0),
                notional=notional,
                quantity=money.down_to(money.div(notional, price), money.QUANTITY_STEP),
                price=price,
                operation=operation,
                requires=requires,
                skip_reason=skip,
            )
        )
    unreached = tuple(
        a
        for a in sorted(set(target) | set(exact_current))
        if a in stables
        and a != quote
        and abs(target.get(a, 0.0) - current.get(a, 0.0)) >= no_trade_threshold_percent
    )
    return LegPlan(kind, total, stable_now, stable_target, tuple(legs), unreached)


def unreached(legs: LegPlan, markets: Iterable[str], quote: str, account: str) -> list[str]:
    """Why the plan cannot reach its targets on the account, one line each:
    a traded leg with no market, a stable other than the quote to be bought
    or sold. A leg is skipped only for the no-trade zone or the minimum
    trade; these are blockers, never quietly skipped."""
    known = set(markets)
    reasons = [
        f"leg {leg.index} ({leg.side.value} {leg.symbol}): no {leg.symbol} market on {account}"
        for leg in legs.active_legs
        if leg.symbol not in known
    ]
    reasons += [
        f"{asset}: a stable other than the account's quote {quote}; legs trade against "
        f"{quote} only, so its target cannot be reached"
        for asset in legs.unreached_stables
    ]
    return reasons


def _classify(
    kind: ExecutionKind, side: Side, hedge: bool
) -> tuple[Operation, frozenset[Operation]]:
    if hedge:
        # Opening, growing or closing a hedge: the freezes' HEDGE rule alone.
        return Operation.HEDGE, frozenset({Operation.HEDGE})
    if kind is ExecutionKind.ROTATION:
        return Operation.ROTATION, frozenset({Operation.ROTATION})
    if kind is ExecutionKind.DE_RISK:
        return Operation.SELL_TO_STABLES, frozenset({Operation.SELL_TO_STABLES})
    # Every leg of a rebalancing is part of it: a freeze that forbids
    # rebalancing (S3, ERROR_FREEZE) stops its sells as well as its buys, and
    # a buy is a purchase too.
    if side is Side.SELL:
        return Operation.SELL_TO_STABLES, frozenset(
            {Operation.SELL_TO_STABLES, Operation.REBALANCING}
        )
    return Operation.PURCHASE, frozenset({Operation.PURCHASE, Operation.REBALANCING})


RISK_BUYING = frozenset({Operation.PURCHASE, Operation.REBALANCING})


def buys_risk(leg: Leg) -> bool:
    """True when the leg is a purchase or part of a rebalancing: what a
    policy in mode FREEZE refuses to start (POLICY.md, "What the policy does
    downstream"). Sells to stables, rotations and hedges do not buy risk;
    whether they may go is the freezes' decision."""
    return bool(leg.requires & RISK_BUYING)


def mode_refusal(mode: PolicyMode, legs: LegPlan) -> str | None:
    """Why a policy in ``mode`` refuses to start an execution of ``legs``,
    or None: mode FREEZE refuses any that buys risk."""
    buying = [leg for leg in legs.active_legs if buys_risk(leg)]
    if mode is not PolicyMode.FREEZE or not buying:
        return None
    listed = ", ".join(f"{leg.index} ({leg.side.value} {leg.symbol})" for leg in buying)
    return f"the policy mode is FREEZE: no execution that buys risk starts (legs {listed})"


def blocked_by(leg: Leg, freezes: Iterable[Freeze], now: datetime) -> list[Freeze]:
    """The active freezes that forbid any operation ``leg`` requires; checked
    when the execution starts and again right before each send."""
    return [
        f
        for f in freezes
        if f.active_at(now) and not all(allows(f.type, op) for op in leg.requires)
    ]
