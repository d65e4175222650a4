"""ValidateAllocation: a change of weights judged against the policy."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.errors import GovexError, invalid_field
from govex_server.domain.execution.legs import DEFAULT_STABLES, Leg, Side
from govex_server.domain.execution.schedule import MAX_EXECUTION_DAYS, days_needed, schedule
from govex_server.domain.freezes import Operation
from govex_server.domain.plans import Target
from govex_server.domain.policy import Policy
from govex_server.domain.targets import validate_targets

MAX_COST_FRACTION = 0.005  # estimated cost above 0.5% of the portfolio: REJECT
# Without a portfolio value, days are counted on this one (in proportion; the
# minimum trade, an amount of money, then plays no part).
NOMINAL_VALUE = Decimal(1_000_000)


class Recommendation(enum.Enum):
    """What to do with the change."""

    NO_ACTION = "NO_ACTION"
    APPROVE = "APPROVE"
    REVIEW = "REVIEW"
    REJECT = "REJECT"


@dataclass(frozen=True)
class AssetChange:
    """One asset's move, in percentage points."""

    asset: str
    current: float
    target: float
    delta: float
    inside_no_trade_zone: bool


@dataclass(frozen=True)
class AllocationVerdict:
    """The evaluation of a change of allocation."""

    changes: tuple[AssetChange, ...]
    turnover_percent: float
    estimated_cost_bps: float
    estimated_cost_usd: Decimal | None
    days_at_cap: int
    recommendation: Recommendation
    reasons: tuple[str, ...]


def turnover_percent(current: Sequence[Target], target: Sequence[Target]) -> float:
    """The larger of what is bought and what is sold, in percent: half the sum
    of |target - current| when both sum to 100, and 100 when starting from
    nothing (no current weights known)."""
    now = {t.asset: t.weight_percent for t in current}
    then = {t.asset: t.weight_percent for t in target}
    deltas = [then.get(a, 0) - now.get(a, 0) for a in now.keys() | then.keys()]
    return max(math.fsum(d for d in deltas if d > 0), -math.fsum(d for d in deltas if d < 0))


def days_at_cap(
    changes: Sequence[AssetChange],
    portfolio_value_usd: Decimal | None,
    policy: Policy,
    now: datetime,
    max_days: int = MAX_EXECUTION_DAYS,
) -> int:
    """The days the engine's own schedule would take for these changes (the
    function ValidatePlan and ExecutePlan use): one leg per non-stable asset
    outside the no-trade zone, sells and buys each counted against the
    daily cap. GovexError SCHEDULE_TOO_LONG beyond ``max_days``."""
    value = portfolio_value_usd or NOMINAL_VALUE
    traded = [c for c in changes if not c.inside_no_trade_zone and c.asset not in DEFAULT_STABLES]
    legs = [
        Leg(
            index=i,
            asset=c.asset,
            symbol=c.asset,
            side=Side.SELL if c.delta < 0 else Side.BUY,
            current_percent=c.current,
            target_percent=c.target,
            notional=money.notional(money.mul(value, money.from_ratio(abs(c.delta) / 100))),
            quantity=money.ZERO,
            price=money.ONE,
            operation=Operation.REBALANCING,
            requires=frozenset(),
        )
        # Sells first, as compute_legs orders them (they fund the buys).
        for i, c in enumerate(sorted(traded, key=lambda c: (c.delta >= 0, c.asset)))
    ]
    if not legs:
        return 0
    min_trade = policy.min_trade_usd if portfolio_value_usd is not None else Decimal("0.01")
    slices = schedule(
        legs, value, policy.cap_daily, policy.ramp_hours, min_trade, now, max_days=max_days
    )
    return days_needed(slices)


def evaluate(
    current: Sequence[Target],
    target: Sequence[Target],
    portfolio_value_usd: Decimal | None,
    policy: Policy,
    at: datetime,
    max_days: int = MAX_EXECUTION_DAYS,
) -> AllocationVerdict:
    """Per-asset changes, turnover, cost, days at the daily cap, and a
    recommendation with its reasons."""
    validate_targets(current, "current")
    validate_targets(target, "target")
    if portfolio_value_usd is not None and portfolio_value_usd <= 0:
        raise invalid_field("portfolio_value_usd", "must be a positive number")
    now = {t.asset: t.weight_percent for t in current}
    then = {t.asset: t.weight_percent for t in target}
    zone = policy.no_trade_threshold * 100
    changes = []
    for asset in sorted(now.keys() | then.keys()):
        delta = then.get(asset, 0.0) - now.get(asset, 0.0)
        changes.append(
            AssetChange(asset, now.get(asset, 0.0), then.get(asset, 0.0), delta, abs(delta) < zone)
        )
    turnover = math.fsum(abs(c.delta) for c in changes) / 2
    traded = math.fsum(abs(c.delta) for c in changes if not c.inside_no_trade_zone) / 2
    cost_bps = traded / 100 * policy.estimated_cost_bps
    # Money from a ratio: the cost in bps enters as its shortest repr, the
    # result is rounded half even to the cent (an estimate, shown to people).
    cost_usd = (
        None
        if portfolio_value_usd is None
        else money.cents(
            money.div(money.mul(portfolio_value_usd, money.from_ratio(cost_bps)), Decimal(10_000))
        )
    )
    cap_percent = policy.cap_daily * 100
    too_long = ""
    try:
        days = days_at_cap(changes, portfolio_value_usd, policy, at, max_days)
    except GovexError as exc:
        days, too_long = max_days + 1, exc.message
    reasons = [
        f"turnover {turnover:.2f}% ({traded:.2f}% outside the {zone:.2f}% no-trade zone)",
        f"estimated cost {cost_bps:.2f} bps of the portfolio "
        f"({policy.estimated_cost_bps} bps of traded notional)",
        f"{days} day(s) at the daily cap of {cap_percent:.2f}%",
    ]
    if all(c.inside_no_trade_zone for c in changes):
        recommendation = Recommendation.NO_ACTION
        reasons.append("every change is inside the no-trade zone")
    elif too_long:
        recommendation = Recommendation.REJECT
        reasons.append(too_long)
    elif cost_bps / 10_000 > MAX_COST_FRACTION:
        recommendation = Recommendation.REJECT
        reasons.append(f"estimated cost above {MAX_COST_FRACTION:.1%} of the portfolio")
    elif days > 1:
        recommendation = Recommendation.REVIEW
        reasons.append("needs more than one day at the daily cap")
    else:
        recommendation = Recommendation.APPROVE
        reasons.append("fits the policy")
    return AllocationVerdict(
        tuple(changes), turnover, cost_bps, cost_usd, days, recommendation, tuple(reasons)
    )
