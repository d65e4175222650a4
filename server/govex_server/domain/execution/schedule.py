"""When each slice of each leg is sent: the day's traded notional never
exceeds cap_daily x portfolio value (the rest moves to the next UTC days),
and a leg's share of a day is split into slices spread over ramp_hours."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.errors import failed_precondition
from govex_server.domain.execution.legs import Leg

MAX_SLICES_PER_DAY = 24
# How many days an execution may take by default (the setting
# max_execution_days): a longer schedule is refused, with its length.
MAX_EXECUTION_DAYS = 30


@dataclass(frozen=True)
class Slice:
    """One order to send at a time."""

    leg_index: int
    slice_index: int
    day: int
    scheduled_time: datetime
    notional: Decimal


def _midnight_after(moment: datetime) -> datetime:
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=1)


def schedule(
    legs: Sequence[Leg],
    portfolio_value: Decimal,
    cap_daily: float,
    ramp_hours: float,
    min_trade_usd: Decimal,
    start: datetime,
    used_today: Decimal = money.ZERO,
    max_days: int = MAX_EXECUTION_DAYS,
) -> list[Slice]:
    """Slices for the traded legs, sells first (they fund the buys). The
    daily budget (cap x portfolio value) is cut down to the quote step; a
    portion split into slices gives each its share cut down, and the last
    slice the remainder, so the slices of a leg add up to its notional.
    ``used_today`` is what the account already traded today. More than
    ``max_days`` days is FAILED_PRECONDITION SCHEDULE_TOO_LONG, saying how
    many days it would take (or that it never ends: a day's cap under the
    minimum trade)."""
    budget_per_day = money.notional(money.mul(money.from_ratio(cap_daily), portfolio_value))
    if budget_per_day <= 0:
        raise ValueError("the daily cap must be positive")
    remaining = {leg.index: leg.notional for leg in legs if not leg.skipped}
    order = [leg.index for leg in legs if not leg.skipped]  # legs come sells first
    slices: list[Slice] = []
    counters = dict.fromkeys(order, 0)
    day = 0
    day_start = start
    left_today = max(money.ZERO, budget_per_day - used_today)
    while any(remaining[i] > 0 for i in order):
        portions: list[tuple[int, Decimal]] = []
        for index in order:
            if left_today <= 0:
                break
            take = min(remaining[index], left_today)
            if take <= 0:
                continue
            if take < remaining[index] and take < min_trade_usd:
                # A sliver of today's budget: better whole tomorrow than an
                # order under the minimum trade today.
                break
            rest = remaining[index] - take
            if 0 < rest < min_trade_usd:
                # Nor a sliver left behind for tomorrow: leave a tradable rest.
                take = remaining[index] - min_trade_usd
                if take < min_trade_usd:
                    break
            portions.append((index, take))
            remaining[index] -= take
            left_today -= take
        day_end = _midnight_after(day_start)
        window = min(ramp_hours, (day_end - day_start).total_seconds() / 3600)
        for index, notional in portions:
            count = max(
                1, min(MAX_SLICES_PER_DAY, math.ceil(window), int(notional // min_trade_usd))
            )
            step = timedelta(hours=window / count)
            share = money.notional(money.div(notional, Decimal(count)))
            for k in range(count):
                amount = share if k < count - 1 else notional - share * (count - 1)
                slices.append(Slice(index, counters[index], day, day_start + k * step, amount))
                counters[index] += 1
        day += 1
        day_start = _midnight_after(day_start)
        left_today = budget_per_day
        if day >= max_days and any(remaining[i] > 0 for i in order):
            raise _too_long(
                day, sum(remaining.values(), money.ZERO), budget_per_day, min_trade_usd, max_days
            )
    return slices


def _too_long(
    day: int, left: Decimal, per_day: Decimal, min_trade_usd: Decimal, max_days: int
) -> Exception:
    if per_day < min_trade_usd:
        length = (
            f"it would never end: the day's cap of {per_day:.2f} is under the minimum "
            f"trade of {min_trade_usd:.2f}"
        )
    else:
        days = day + math.ceil(left / per_day)
        length = f"it would take about {days} days ({left:.2f} left after day {day})"
    return failed_precondition(
        "SCHEDULE_TOO_LONG",
        "schedule",
        f"the execution is limited to {max_days} days (max_execution_days); {length}",
    )


def days_needed(slices: Sequence[Slice]) -> int:
    """How many UTC days the schedule spans."""
    return max((s.day for s in slices), default=-1) + 1
