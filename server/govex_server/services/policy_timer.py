"""Moves the policy when time or freezes move it, with no request needed:
signals turning STALE or ERROR, a held-back prudent change coming due, a
freeze starting or ending (on any replica)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from govex_server.domain.clock import Clock
from govex_server.services.policy import PolicyService
from govex_server.services.waiting import until_or_poked

log = logging.getLogger("govex.policy")
RECHECK = timedelta(seconds=60)


class PolicyTimer:
    """Re-derives at the next time threshold, or when poked and the active
    freezes differ from those of the last derivation."""

    def __init__(self, policy: PolicyService, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """The stored state changed (perhaps the freezes)."""
        self._wake.set()

    async def run(self) -> None:
        """The task body; cancelled at shutdown."""
        while True:
            self._wake.clear()
            try:
                due = await self._policy.next_time_change()
                now = self._clock.now()
                overdue = due is not None and due <= now
                if overdue or await self._policy.freezes_changed():
                    changed = await self._policy.rederive()
                    if changed:
                        log.info("policy re-derived")
                    if changed or not overdue:
                        continue
                    due = None  # overdue yet nothing moved: never spin on it
            except Exception:
                log.exception("policy re-derivation failed; retrying in 1s")
                await asyncio.sleep(1)
                continue
            deadline = now + RECHECK
            if due is not None and now < due < deadline:
                deadline = due
            await until_or_poked(self._clock, deadline, self._wake)
