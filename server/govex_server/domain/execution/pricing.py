"""Turning a slice's notional into a limit order the exchange accepts."""

from __future__ import annotations

from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.execution.legs import Side
from govex_server.domain.execution.safety import Market


def limit_order(
    side: Side, notional: Decimal, reference: Decimal, slippage_bps: int, market: Market
) -> tuple[Decimal, Decimal]:
    """``(quantity, price)``: the limit price at most ``slippage_bps`` from the
    reference, rounded onto the price step *towards the reference* (down for a
    buy, up for a sell: the limit never allows more slippage than the policy),
    and the quantity cut *down* onto the amount step (never more than the
    notional buys)."""
    slip = money.div(Decimal(slippage_bps), Decimal(10_000))
    if side is Side.BUY:
        price = money.floor_to(money.mul(reference, money.ONE + slip), market.price_step)
    else:
        price = money.ceil_to(money.mul(reference, money.ONE - slip), market.price_step)
    return money.down_to(money.div(notional, reference), market.amount_step), price


def step_refusal(reference: Decimal, slippage_bps: int, market: Market) -> str | None:
    """Why no limit price inside the slippage limit can move one price step
    past the reference (XRP at 0.5 with a step of 0.01 and 30 bps: the limit
    stays at 0.50 and rests behind every ask forever), or None."""
    room = money.div(money.mul(reference, Decimal(slippage_bps)), Decimal(10_000))
    if market.price_step <= 0 or market.price_step <= room:
        return None
    return (
        f"one price step ({market.price_step}) is more than the slippage limit allows "
        f"({slippage_bps} bps of {reference} = {room}): its limit order could never cross"
    )
