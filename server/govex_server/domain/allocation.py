"""ValidateAllocation: a change of weights judged against the policy."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.errors import invalid_field
from govex_server.domain.plans import Target
from govex_server.domain.policy import Policy
from govex_server.domain.targets import validate_targets

MAX_COST_FRACTION = 0.005  # estimated cost above 0.5% of the portfolio: REJECT


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


def evaluate(
    current: Sequence[Target],
    target: Sequence[Target],
    portfolio_value_usd: Decimal | None,
    policy: Policy,
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
    days = math.ceil(traded / cap_percent - 1e-9) if traded > 0 else 0
    reasons = [
        f"turnover {turnover:.2f}% ({traded:.2f}% outside the {zone:.2f}% no-trade zone)",
        f"estimated cost {cost_bps:.2f} bps of the portfolio "
        f"({policy.estimated_cost_bps} bps of traded notional)",
        f"{days} day(s) at the daily cap of {cap_percent:.2f}%",
    ]
    if all(c.inside_no_trade_zone for c in changes):
        recommendation = Recommendation.NO_ACTION
        reasons.append("every change is inside the no-trade zone")
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
