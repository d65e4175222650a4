"""Trims the event log to its configured retention."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from govex_server.domain.clock import Clock
from govex_server.store.database import Store

log = logging.getLogger("govex.retention")


class EventRetention:
    """Deletes events older than ``keep_for``, always keeping the newest
    ``keep_newest``. A resume point older than what is left is OUT_OF_RANGE."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        keep_for: timedelta,
        keep_newest: int,
        interval: timedelta,
    ) -> None:
        self._store = store
        self._clock = clock
        self._keep_for = keep_for
        self._keep_newest = keep_newest
        self._interval = interval

    async def run_once(self) -> int:
        """One trim; returns how many events were deleted."""
        cutoff = self._clock.now() - self._keep_for
        return await self._store.write(
            lambda uow: uow.events.delete_before(cutoff, self._keep_newest)
        )

    async def run(self) -> None:
        """The task body; cancelled at shutdown."""
        while True:
            try:
                deleted = await self.run_once()
                if deleted:
                    log.info("event retention deleted %d events", deleted)
            except Exception:
                log.exception("event retention failed")
            await asyncio.sleep(self._interval.total_seconds())
