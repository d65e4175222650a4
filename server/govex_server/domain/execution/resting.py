"""Resting orders: a limit order left open on the book (the market moved
away, a partial fill's remainder) is not left there forever. After
``order_ttl_seconds`` it is cancelled and what is left of it is sent again as
the next attempt (a new client order id) at a fresh price inside the
slippage limit, up to ``max_attempts`` sends of the slice; then the leg fails
with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

DEFAULT_TTL_SECONDS = 120.0
DEFAULT_MAX_ATTEMPTS = 5
# Client order ids carry the attempt in two digits (orders.client_order_id).
MAX_ATTEMPTS_LIMIT = 50


@dataclass(frozen=True)
class RestingRule:
    """How long an order may rest and how many times a slice is sent."""

    ttl: timedelta = timedelta(seconds=DEFAULT_TTL_SECONDS)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if self.ttl <= timedelta(0):
            raise ValueError("order_ttl_seconds: must be more than 0")
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValueError(f"max_attempts: must be between 1 and {MAX_ATTEMPTS_LIMIT}")

    def stale(self, send_time: datetime | None, now: datetime) -> bool:
        """True when an order sent at ``send_time`` has rested too long
        (an order with no send time, adopted or from before this rule, is
        counted from its first look here: never stale at once)."""
        return send_time is not None and now - send_time >= self.ttl

    def next_attempt(self, attempt: int, left: Decimal) -> int | None:
        """The attempt number (from 0) that sends ``left`` again, or None:
        nothing is left, or the slice was sent ``max_attempts`` times."""
        if left <= 0 or attempt + 1 >= self.max_attempts:
            return None
        return attempt + 1

    def exhausted(self, attempt: int) -> str:
        """The reason a leg fails when its slice rested on every attempt."""
        return (
            f"not filled after {attempt + 1} attempts of {self.ttl.total_seconds():g}s each "
            "(order_ttl_seconds, max_attempts)"
        )
