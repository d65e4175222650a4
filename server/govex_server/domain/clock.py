"""The one clock abstraction: everything that depends on time takes a Clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the time (timezone-aware UTC)."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        """The time this clock was set to."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Moves the clock forward (never backward) and returns the new time."""
        if delta < timedelta(0):
            raise ValueError("a clock never moves backward")
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        """Jumps to ``when``, which must not be earlier than now."""
        if when.tzinfo is None:
            raise ValueError("times are timezone-aware")
        if when < self._now:
            raise ValueError("a clock never moves backward")
        self._now = when
