"""Failed sign-ins, per client address (pure, clock injected).

A bearer token is long and random, so guessing one is hopeless; the limit
is there so that trying is loud and slow: after ``limit`` failures within
``window`` an address is refused until its oldest failure ages out, and the
operator sees it in the log and in ``govex_console_sign_ins_total``."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from govex_server.domain.clock import Clock

# Addresses remembered at most: a flood from many addresses cannot grow the
# table without bound (the oldest are forgotten first).
MAX_ADDRESSES = 10_000


class SignInThrottle:
    """``wait(address)`` says how long an address must wait before it may try
    again (zero: it may); ``failed`` and ``succeeded`` record the outcome."""

    def __init__(
        self, clock: Clock, limit: int = 5, window: timedelta = timedelta(minutes=1)
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: dict[str, deque[datetime]] = {}

    def wait(self, address: str) -> timedelta:
        failures = self._recent(address)
        if len(failures) < self._limit:
            return timedelta(0)
        return failures[0] + self._window - self._clock.now()

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        failures.append(self._clock.now())
        self._failures[address] = failures
        while len(self._failures) > MAX_ADDRESSES:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[datetime]:
        """The address's failures still inside the window (older ones dropped)."""
        failures = self._failures.pop(address, deque())
        horizon = self._clock.now() - self._window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if failures:
            self._failures[address] = failures  # re-inserted: most recent last
        return failures
