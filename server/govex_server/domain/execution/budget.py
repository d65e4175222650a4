"""The day's notional budget of an execution: what may still be sent today.

The cap is the policy's daily cap of the portfolio's value. A running
execution obeys the lower of the cap it started with and the policy in force
now: a freeze or new signals that lower the cap lower the day's remaining
budget at once, and a cap that rises mid-execution never lifts it above the
one the execution was validated under."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from govex_server.domain import money

# Slices are cut on the market's steps, so a day may end a hair over its cap.
CAP_TOLERANCE = Decimal("1.01")


def day_cap(portfolio_value: Decimal, started_cap: float, current_cap: float) -> Decimal:
    """Today's notional cap, from the start's cap and the current one (fractions)."""
    return money.notional(
        money.mul(money.from_ratio(min(started_cap, current_cap)), portfolio_value)
    )


def deferral(
    now: datetime, used_today: Decimal, notional: Decimal, cap: Decimal
) -> datetime | None:
    """When an order of ``notional`` must wait until, given what the account
    traded today: None when it fits today's cap, else the next UTC midnight."""
    if used_today + notional <= money.mul(cap, CAP_TOLERANCE):
        return None
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), tzinfo=UTC)


def still_to_trade(quantity: Decimal, filled: Decimal, price: Decimal) -> Decimal:
    """What an order at the exchange may still trade, at most: its unfilled
    part at its limit price. The day's limits count it before its fills are
    recorded."""
    return money.mul(quantity - filled, price)
