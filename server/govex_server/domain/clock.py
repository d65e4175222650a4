"""The one clock abstraction: everything that depends on time takes a Clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the time (timezone-aware UTC) and waits for it."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Returns once ``now() >= when`` (at once if it already is)."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        """Sleeps in steps of at most a minute, so that a wall-clock jump is
        noticed within a minute."""
        while (remaining := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, 60.0))


class ManualClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self._waiters: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        """The time this clock was set to."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Moves the clock forward (never backward) and returns the new time."""
        if delta < timedelta(0):
            raise ValueError("a clock never moves backward")
        self._now += delta
        self._wake()
        return self._now

    def set(self, when: datetime) -> None:
        """Jumps to ``when``, which must not be earlier than now."""
        if when.tzinfo is None:
            raise ValueError("times are timezone-aware")
        if when < self._now:
            raise ValueError("a clock never moves backward")
        self._now = when
        self._wake()

    async def sleep_until(self, when: datetime) -> None:
        """Returns when the clock has been moved to ``when`` or later."""
        if self._now >= when:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((when, future))
        try:
            await future
        finally:
            self._waiters = [(w, f) for (w, f) in self._waiters if f is not future]

    def _wake(self) -> None:
        for when, future in self._waiters:
            if when <= self._now and not future.done():
                future.set_result(None)
