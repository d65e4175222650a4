"""Re-reads the principals file while serving (SIGHUP, or a poll): a valid
file replaces every principal at once and the change is audited; a broken
one is refused with an error line and the principals in force stay."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from govex_server.domain.clock import Clock
from govex_server.domain.principals import Principal
from govex_server.services.recorder import Recorder
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store

log = logging.getLogger("govex.principals")

Table = Mapping[str, Principal]


class PrincipalsReloader:
    """Loads with ``load`` (raises ValueError on a broken file), installs with
    ``install``; ``current`` is the table in force."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        recorder: Recorder,
        load: Callable[[], Table],
        install: Callable[[Table], None],
        current: Table,
    ) -> None:
        self._store = store
        self._clock = clock
        self._recorder = recorder
        self._load = load
        self._install = install
        self._current = dict(current)
        self._lock = asyncio.Lock()

    async def reload(self, why: str) -> bool:
        """True when the file changed the principals."""
        async with self._lock:
            try:
                table = dict(self._load())
            except ValueError as exc:
                log.error("principals file not reloaded (%s), the old one stays: %s", why, exc)
                return False
            if table == self._current:
                return False
            # name -> (principal, token hash): a new token is a change too.
            before = {p.name: (p, h) for h, p in self._current.items()}
            after = {p.name: (p, h) for h, p in table.items()}
            changed = sorted(n for n in before.keys() & after.keys() if before[n] != after[n])
            details = {
                "added": sorted(after.keys() - before.keys()),
                "removed": sorted(before.keys() - after.keys()),
                "changed": changed,
            }
            now = self._clock.now()
            audit = AuditRecord.by(
                None,
                at=now,
                rpc="PrincipalsReload",
                resource="principals",
                reason=why,
                details=details,
            )
            await self._store.write(lambda uow: self._recorder.record(uow, None, audit))
            self._install(table)
            self._current = table
            log.info("principals reloaded (%s): %s", why, details)
            return True

    async def run(self, interval_seconds: float) -> None:
        """The poll task body; cancelled at shutdown."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.reload("poll")
            except Exception:
                log.exception("reloading the principals failed")
