"""Turning a slice's notional into a limit order the exchange accepts."""

from __future__ import annotations

import math

from govex_server.domain.execution.legs import Side
from govex_server.domain.execution.safety import Market


def floor_to(value: float, step: float) -> float:
    """``value`` rounded down to a multiple of ``step`` (as is, without a step)."""
    return round(math.floor(value / step + 1e-9) * step, 12) if step > 0 else value


def ceil_to(value: float, step: float) -> float:
    """``value`` rounded up to a multiple of ``step`` (as is, without a step)."""
    return round(math.ceil(value / step - 1e-9) * step, 12) if step > 0 else value


def limit_order(
    side: Side, notional: float, reference: float, slippage_bps: float, market: Market
) -> tuple[float, float]:
    """``(quantity, price)``: the limit price at most ``slippage_bps`` from the
    reference (rounded towards it onto the price step, so the limit never
    allows more slippage), and the quantity rounded down onto the amount step."""
    slip = slippage_bps / 10_000
    if side is Side.BUY:
        price = floor_to(reference * (1 + slip), market.price_step)
    else:
        price = ceil_to(reference * (1 - slip), market.price_step)
    return floor_to(notional / reference, market.amount_step), price
