"""The pre-trade safety validator (DESIGN.md §4): every order, three levels,
a 0-100 score (100 - 30 per error - 10 per warning, floored at 0)."""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from govex_server.domain import money


class Level(enum.Enum):
    """How strict the validator is."""

    STRICT = "STRICT"  # fails on any warning
    MODERATE = "MODERATE"  # fails on errors, reports warnings
    PERMISSIVE = "PERMISSIVE"  # runs only the hard checks


class Severity(enum.Enum):
    """How serious a finding is."""

    WARNING = "WARNING"
    ERROR = "ERROR"


# Checks that run at every level: breaking them would make the order wrong
# or dangerous whatever the risk appetite.
HARD = frozenset({"BALANCE", "PRECISION", "MIN_NOTIONAL", "DUPLICATE", "LIVE_TRADING"})


@dataclass(frozen=True)
class Issue:
    """One finding."""

    rule: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class Verdict:
    """The validator's answer for one order."""

    passed: bool
    score: int
    level: Level
    issues: tuple[Issue, ...]


@dataclass(frozen=True)
class Market:
    """What the exchange says about a symbol."""

    amount_step: Decimal
    price_step: Decimal
    min_notional: Decimal
    min_amount: Decimal = money.ZERO


@dataclass(frozen=True)
class Limits:
    """Configured limits and switches."""

    max_order_notional: Decimal
    daily_notional_limit: Decimal
    price_collar_bps: float
    allowed_symbols: frozenset[str] | None
    live_trading_enabled: bool
    fee_rate: Decimal = Decimal("0.001")


@dataclass(frozen=True)
class ProposedOrder:
    """An order about to be sent."""

    client_order_id: str
    symbol: str
    side: str  # "BUY" or "SELL"
    quantity: Decimal
    price: Decimal
    reference_price: Decimal
    sandbox: bool

    @property
    def notional(self) -> Decimal:
        """Quantity times price, exactly."""
        return money.mul(self.quantity, self.price)


def validate(
    order: ProposedOrder,
    limits: Limits,
    market: Market,
    daily_used: Decimal,
    free_quote: Decimal,
    free_base: Decimal,
    known_client_ids: Collection[str],
    level: Level,
) -> Verdict:
    """Every rule, then the level decides what fails. ``daily_used`` is
    what the account traded today and what its orders at the exchange may
    still trade."""
    issues: list[Issue] = []

    def error(rule: str, message: str) -> None:
        issues.append(Issue(rule, Severity.ERROR, message))

    def warning(rule: str, message: str) -> None:
        issues.append(Issue(rule, Severity.WARNING, message))

    notional = order.notional
    if not (order.quantity > 0 and order.price > 0):
        error("PRECISION", "quantity and price must be positive numbers")
    if notional > limits.max_order_notional:
        error("MAX_ORDER_NOTIONAL", f"{notional:.2f} exceeds {limits.max_order_notional:.2f}")
    elif notional * 5 > 4 * limits.max_order_notional:
        warning("MAX_ORDER_NOTIONAL", f"{notional:.2f} is over 80% of the per-order maximum")
    if daily_used + notional > limits.daily_notional_limit:
        error(
            "DAILY_NOTIONAL",
            f"{daily_used:.2f} traded or at the exchange today + {notional:.2f} exceeds "
            f"{limits.daily_notional_limit:.2f}",
        )
    elif (daily_used + notional) * 10 > 9 * limits.daily_notional_limit:
        warning("DAILY_NOTIONAL", "over 90% of the daily notional limit")
    # Exact comparisons: no tolerance lets an order spend what is not there.
    needed = money.mul(notional, money.ONE + limits.fee_rate)
    if order.side == "BUY" and needed > free_quote:
        error("BALANCE", f"needs {needed:.2f}, {free_quote:.2f} free")
    if order.side == "SELL" and order.quantity > free_base:
        error("BALANCE", f"sells {order.quantity}, {free_base} free")
    if not money.on_step(order.quantity, market.amount_step):
        error("PRECISION", f"quantity {order.quantity} is not a multiple of {market.amount_step}")
    if not money.on_step(order.price, market.price_step):
        error("PRECISION", f"price {order.price} is not a multiple of {market.price_step}")
    if notional < market.min_notional:
        error("MIN_NOTIONAL", f"{notional:.2f} is under the exchange minimum {market.min_notional}")
    if order.quantity < market.min_amount:
        error("MIN_NOTIONAL", f"quantity under the exchange minimum {market.min_amount}")
    if order.reference_price > 0:
        distance_bps = float(abs(money.div(order.price, order.reference_price) - 1) * 10_000)
        if distance_bps > limits.price_collar_bps:
            error(
                "PRICE_COLLAR",
                f"price is {distance_bps:.1f} bps from the reference (collar "
                f"{limits.price_collar_bps:g})",
            )
        elif distance_bps > limits.price_collar_bps / 2:
            warning("PRICE_COLLAR", f"price is {distance_bps:.1f} bps from the reference")
    if limits.allowed_symbols is not None and order.symbol not in limits.allowed_symbols:
        error("ALLOWED_SYMBOL", f"{order.symbol} is not an allowed symbol")
    if order.client_order_id in known_client_ids:
        error("DUPLICATE", f"client order id {order.client_order_id} was already used")
    if not order.sandbox and not limits.live_trading_enabled:
        error("LIVE_TRADING", "live (non-sandbox) trading is not enabled in the configuration")

    if level is Level.PERMISSIVE:
        issues = [i for i in issues if i.rule in HARD]
    errors = sum(i.severity is Severity.ERROR for i in issues)
    warnings = len(issues) - errors
    score = max(0, 100 - 30 * errors - 10 * warnings)
    passed = errors == 0 and (level is not Level.STRICT or warnings == 0)
    return Verdict(passed, score, level, tuple(issues))
