"""Idempotency keys of mutating requests (AIP-155): the first response of
each (principal, RPC, request_id), kept for ``request_id_retention_hours``."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from govex_server.domain.clock import Clock
from govex_server.store.database import Store

log = logging.getLogger("govex.idempotency")


class IdempotencyKeys:
    """Looks up first responses and forgets keys past their retention."""

    def __init__(self, store: Store, clock: Clock, retention: timedelta) -> None:
        self._store = store
        self._clock = clock
        self.retention = retention

    async def first_response(
        self, principal: str, rpc: str, request_id: str
    ) -> tuple[str, bytes] | None:
        """``(fingerprint, response)`` of the first request with this key
        within the retention period, if there was one."""
        since = self._clock.now() - self.retention
        return await self._store.read(
            lambda uow: uow.idempotency.get(principal, rpc, request_id, since)
        )

    async def prune(self) -> int:
        """Deletes keys older than the retention; returns how many."""
        cutoff = self._clock.now() - self.retention
        return await self._store.write(lambda uow: uow.idempotency.delete_before(cutoff))

    async def run(self, interval: timedelta) -> None:
        """The pruning task body; cancelled at shutdown."""
        while True:
            try:
                deleted = await self.prune()
                if deleted:
                    log.info("forgot %d request_ids older than %s", deleted, self.retention)
            except Exception:
                log.exception("pruning request_ids failed")
            await asyncio.sleep(interval.total_seconds())
