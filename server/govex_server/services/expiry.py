"""Ends freezes on time, with no request needed, on every replica."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from govex_server.domain.clock import Clock
from govex_server.services.freezes import FreezeService
from govex_server.services.waiting import until_or_poked

log = logging.getLogger("govex.expiry")

# Even with nothing due, look again this often: a safety net for a missed
# wake-up (for example a notification lost while a replica reconnected).
RECHECK = timedelta(seconds=60)


class FreezeExpirer:
    """Sleeps until the next expire time (or a poke: a freeze changed), then
    ends what is due. Runs at start-up first, so a freeze that expired while
    the server was down is ended (with its event) before anything else."""

    def __init__(self, freezes: FreezeService, clock: Clock) -> None:
        self._freezes = freezes
        self._clock = clock
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """Something changed: recompute the next expiry."""
        self._wake.set()

    async def run(self) -> None:
        """The task body; cancelled at shutdown."""
        while True:
            self._wake.clear()
            try:
                # Read first: a write transaction on every wake-up would take
                # SQLite's single write lock after every change anybody makes.
                upcoming = await self._freezes.next_expiry()
                if upcoming is not None and upcoming <= self._clock.now():
                    for freeze in await self._freezes.expire_due():
                        log.info("freeze %s (%s) expired", freeze.name, freeze.type.value)
                    continue
            except Exception:
                log.exception("freeze expiry failed; retrying in 1s")
                await asyncio.sleep(1)
                continue
            deadline = self._clock.now() + RECHECK
            if upcoming is not None and upcoming < deadline:
                deadline = upcoming
            await until_or_poked(self._clock, deadline, self._wake)
