"""What the execution and audit pages show, computed from the services'
records (pure): progress of filled notional per leg and in all, by day."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.execution.records import ExecutionRecord, OrderRecord


@dataclass(frozen=True)
class LegProgress:
    """One leg: what it trades and what has filled."""

    index: int
    symbol: str
    side: str
    notional: Decimal
    filled: Decimal
    skip_reason: str

    @property
    def percent(self) -> float:
        return 100.0 if not self.notional else min(100.0, float(100 * self.filled / self.notional))


@dataclass(frozen=True)
class Progress:
    """An execution's legs, its filled notional by day and in all."""

    legs: list[LegProgress]
    by_day: list[tuple[int, Decimal]]

    @property
    def notional(self) -> Decimal:
        return sum((leg.notional for leg in self.legs if not leg.skip_reason), money.ZERO)

    @property
    def filled(self) -> Decimal:
        return sum((leg.filled for leg in self.legs if not leg.skip_reason), money.ZERO)

    @property
    def percent(self) -> float:
        total = self.notional
        return 100.0 if not total else min(100.0, float(100 * self.filled / total))


def filled_notional(order: OrderRecord) -> Decimal:
    """What an order has traded, at its average price (its limit before a fill
    reports one)."""
    return money.notional(money.mul(order.filled, order.average_price or order.price))


def progress(execution: ExecutionRecord, orders: list[OrderRecord]) -> Progress:
    """Filled notional per leg and per day of the schedule."""
    per_leg: dict[int, Decimal] = defaultdict(lambda: money.ZERO)
    per_day: dict[int, Decimal] = defaultdict(lambda: money.ZERO)
    for order in orders:
        traded = filled_notional(order)
        per_leg[order.leg_index] += traded
        per_day[order.day] += traded
    legs = [
        LegProgress(
            leg.index,
            leg.symbol,
            leg.side.value,
            leg.notional,
            per_leg[leg.index],
            leg.skip_reason,
        )
        for leg in execution.legs
    ]
    return Progress(legs, sorted(per_day.items()))
