"""Per-account order-rate budget (for example at most 40 orders per 10 s on
Binance spot), honouring the exchange's Retry-After."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from govex_server.domain.clock import Clock


@dataclass(frozen=True)
class Budget:
    """What ListExchanges reports."""

    max_orders: int
    window: timedelta
    remaining: int
    blocked_until: datetime | None


class OrderRateLimiter:
    """A sliding window of send times; ``acquire`` waits (on the injected
    clock) until a send fits, and a Retry-After blocks every send until it
    has passed."""

    def __init__(self, clock: Clock, max_orders: int, window: timedelta) -> None:
        if max_orders < 1 or window <= timedelta(0):
            raise ValueError("the budget needs at least one order per positive window")
        self._clock = clock
        self._max = max_orders
        self._window = window
        self._sent: deque[datetime] = deque()
        self._blocked_until: datetime | None = None
        self._lock = asyncio.Lock()

    def _forget_old(self, now: datetime) -> None:
        while self._sent and self._sent[0] <= now - self._window:
            self._sent.popleft()

    async def acquire(self) -> None:
        """Returns when one more order may be sent, and counts it."""
        async with self._lock:  # first come, first served
            while True:
                now = self._clock.now()
                if self._blocked_until is not None and now < self._blocked_until:
                    await self._clock.sleep_until(self._blocked_until)
                    continue
                self._forget_old(now)
                if len(self._sent) < self._max:
                    self._sent.append(now)
                    return
                await self._clock.sleep_until(self._sent[0] + self._window)

    def release(self) -> None:
        """Gives back the newest counted send: its order was decided against
        (deferred or refused) before it reached the exchange."""
        if self._sent:
            self._sent.pop()

    def retry_after(self, seconds: float) -> None:
        """The exchange said to wait (HTTP 429 / Retry-After)."""
        until = self._clock.now() + timedelta(seconds=max(0.0, seconds))
        if self._blocked_until is None or until > self._blocked_until:
            self._blocked_until = until

    def budget(self) -> Budget:
        """The budget now."""
        now = self._clock.now()
        self._forget_old(now)
        blocked = self._blocked_until if self._blocked_until and self._blocked_until > now else None
        return Budget(self._max, self._window, self._max - len(self._sent), blocked)
