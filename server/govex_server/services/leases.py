"""This replica's execution leases: claimed in the store, renewed on a
heartbeat, checked before every exchange call and fenced in every write of
an execution's runner.

One code path for both databases: on SQLite (one process, under the
database's exclusive lock) this replica claims every live execution at
start, whoever held it in an earlier run, and never meets another owner; on
PostgreSQL several replicas share the executions, each claiming the
unowned or expired ones with a conditional UPDATE on their generation."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from govex_server.domain.clock import Clock
from govex_server.domain.execution.leases import LeaseTerms
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.leases")


class LeaseLost(Exception):
    """This replica no longer holds an execution's lease (taken over, or not
    renewed in time): its runner stops without writing or sending more."""

    def __init__(self, execution_id: str, why: str) -> None:
        super().__init__(f"execution {execution_id}: lease lost ({why})")
        self.execution_id = execution_id


@dataclass(frozen=True)
class Claim:
    """A lease this replica won: its fencing token and who held it before
    ("" for an execution nobody owned: just started, or released)."""

    execution_id: str
    generation: int
    previous_owner: str

    def takes_over(self, replica: str) -> bool:
        """Won from another replica (not a first claim, nor ``replica``'s own
        lease claimed again)."""
        return self.previous_owner not in ("", replica)


@dataclass
class _Held:
    generation: int
    # Monotonic time after which this replica must not call the exchange.
    deadline: float
    # When it was taken over from another replica (monotonic), if it was:
    # that replica's last requests may still be on their way.
    taken_over: float | None = None


def replica_id() -> str:
    """A name for this process, new at every start: host, pid, random."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


# How long a released lease still holds: a request sent just before the
# stop reaches the exchange before the next owner looks its order up.
RELEASE_GRACE = timedelta(seconds=1)

ClaimNote = Callable[[UnitOfWork, Claim], None]


class Leases:
    """The leases this replica holds, and the rules it keeps with them."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        terms: LeaseTerms,
        replica: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self.terms = terms
        self.replica = replica or replica_id()
        # SQLite is single-process: every live execution is ours to claim.
        self._exclusive = store.is_sqlite
        self._monotonic = monotonic
        self._held: dict[str, _Held] = {}
        # One claim at a time: a second must see what the first took (else
        # it would claim it again, under a generation the first never knew).
        self._claiming = asyncio.Lock()
        # Executions claimed from another owner, and leases lost, since start.
        self.takeovers = 0
        self.lost = 0

    def holds(self, execution_id: str) -> bool:
        """This replica holds the lease (as far as its last renewal knows)."""
        return execution_id in self._held

    @property
    def held(self) -> list[str]:
        return sorted(self._held)

    # ---------------------------------------------------------- the checks

    def check(self, execution_id: str) -> None:
        """Before every exchange call for an execution: raises LeaseLost
        unless the lease is held and its send deadline has not passed (a
        replica paused past its lease wakes up unable to call)."""
        held = self._held.get(execution_id)
        if held is None:
            raise LeaseLost(execution_id, "not held by this replica")
        if self._monotonic() > held.deadline:
            # Given up here: the next heartbeat claims it again if nobody
            # else did (a stalled loop, not a dead replica), under a new
            # generation, and runs it afresh.
            self._lose([execution_id])
            raise LeaseLost(execution_id, "not renewed in time")

    def fence_in(self, uow: UnitOfWork, execution_id: str) -> None:
        """In every unit that writes for an execution's runner: raises
        LeaseLost (the unit rolls back) unless the store still has this
        replica's lease of the generation it claimed. The row stays locked
        to the commit on PostgreSQL, so no claim slips in between."""
        if execution_id in uow.fenced:
            return
        held = self._held.get(execution_id)
        generation = held.generation if held is not None else -1
        if not uow.leases.holds(execution_id, self.replica, generation):
            if held is None:
                raise LeaseLost(execution_id, "not held by this replica")
            raise LeaseLost(execution_id, f"generation {generation} was taken over")
        uow.fenced.add(execution_id)

    # ------------------------------------------------------ claims, renewals

    def claim_new_in(self, uow: UnitOfWork, execution_id: str) -> Claim:
        """The lease of an execution inserted in this unit (the starter's);
        ``hold`` it once the unit has committed."""
        expires = self.terms.expires(self._clock.now())
        if not uow.leases.claim(execution_id, 0, self.replica, expires):
            raise RuntimeError(f"execution {execution_id} was claimed before it was committed")
        return Claim(execution_id, 1, "")

    def hold(self, claim: Claim, started: float) -> None:
        """Takes a committed claim made by a unit that began at ``started``
        (monotonic)."""
        taken_over = self._monotonic() if claim.takes_over(self.replica) else None
        self._held[claim.execution_id] = _Held(
            claim.generation, self.terms.send_deadline(started), taken_over
        )

    def in_flight_until(self, execution_id: str, accept_window: float) -> float | None:
        """Until when (monotonic) a request the previous owner sent before
        this replica took the execution over may still reach the exchange;
        None if it was not taken over or that time has passed."""
        held = self._held.get(execution_id)
        if held is None or held.taken_over is None:
            return None
        until = held.taken_over + accept_window
        return until if self._monotonic() < until else None

    def monotonic(self) -> float:
        return self._monotonic()

    async def claim(
        self, busy: frozenset[str] = frozenset(), note: ClaimNote | None = None
    ) -> list[Claim]:
        """Claims every live execution without a live owner (skipping
        ``busy``: runners still stopping here), in one unit; ``note`` records
        each claim in that unit (the execution's event). The claims won."""
        async with self._claiming:
            return await self._claim(busy, note)

    async def _claim(self, busy: frozenset[str], note: ClaimNote | None) -> list[Claim]:
        started = self._monotonic()
        now = self._clock.now()
        expires = self.terms.expires(now)

        def unit(uow: UnitOfWork) -> list[Claim]:
            won = []
            for eid, generation, owner in uow.leases.claimable(self.replica, now, self._exclusive):
                if eid in self._held or eid in busy:
                    continue
                if uow.leases.claim(eid, generation, self.replica, expires):
                    claim = Claim(eid, generation + 1, owner)
                    if note is not None:
                        note(uow, claim)
                    won.append(claim)
            return won

        claims = await self._store.write(unit)
        for claim in claims:
            self.hold(claim, started)
            if claim.takes_over(self.replica):
                self.takeovers += 1
                log.warning(
                    "execution %s: taken over from %s (lease generation %d)",
                    claim.execution_id,
                    claim.previous_owner,
                    claim.generation,
                )
            else:
                log.info(
                    "execution %s: claimed (lease generation %d)",
                    claim.execution_id,
                    claim.generation,
                )
        return claims

    async def renew(self) -> list[str]:
        """Extends every lease held; the executions whose lease is lost (taken
        over, or the renewal failed: then all of them, conservatively; the
        next claim takes back what nobody else took). Ended ones are dropped."""
        if not self._held:
            return []
        started = self._monotonic()
        expires = self.terms.expires(self._clock.now())
        ids = sorted(self._held)

        def unit(uow: UnitOfWork) -> dict[str, tuple[str, int, bool]]:
            uow.leases.renew(self.replica, expires)
            return uow.leases.leases_of(ids)

        try:
            rows = await self._store.write(unit)
        except Exception:
            log.exception("lease renewal failed: runners of %d executions stop", len(ids))
            return self._lose(ids)
        lost = []
        for eid in ids:
            owner, generation, live = rows.get(eid, ("", 0, False))
            held = self._held.get(eid)
            if held is None:
                continue  # given up meanwhile (its deadline passed)
            if not live:
                del self._held[eid]
            elif owner != self.replica or generation != held.generation:
                lost.append(eid)
            else:
                held.deadline = self.terms.send_deadline(started)
        return self._lose(lost)

    def _lose(self, ids: list[str]) -> list[str]:
        for eid in ids:
            self._held.pop(eid, None)
            self.lost += 1
            log.warning("execution %s: lease lost; its runner here stops", eid)
        return ids

    async def release_all(self) -> None:
        """A graceful stop: shortens every lease held to a second from now
        (time enough for a request already on its way to reach the
        exchange), so that another replica takes over then rather than a
        whole lease later."""
        ids = sorted(self._held)
        self._held.clear()
        if ids:
            expires = self._clock.now() + RELEASE_GRACE
            await self._store.write(lambda uow: uow.leases.release(self.replica, ids, expires))
            log.info("released the leases of %d executions", len(ids))
