"""What GetGovernanceState reads: the mode, the active plan, the counts, the
cooldown and the freezes, served from a cache that is rebuilt when something
changes (not per call) and derived per call only where the clock matters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from govex_server.domain.clock import Clock
from govex_server.domain.freezes import Freeze, Operation, Verdict, verdict
from govex_server.domain.governance import CooldownStatus, ModeSetting
from govex_server.domain.plans import Plan, PlanState, combined_etag
from govex_server.services.read_cache import ReadCache
from govex_server.store.database import Store, UnitOfWork


@dataclass(frozen=True)
class GovernanceSnapshot:
    """What GetGovernanceState reads in one transaction."""

    mode: ModeSetting
    active_plan: Plan | None
    counts: dict[PlanState, int]
    cooldown: CooldownStatus
    freezes: list[Freeze]
    verdicts: list[Verdict]
    read_time: datetime
    etag: str


@dataclass(frozen=True)
class StoredFacts:
    """The stored facts behind GetGovernanceState (time-free, so cacheable)."""

    mode: ModeSetting
    active: Plan | None
    counts: dict[PlanState, int]
    last_activation: tuple[datetime, str] | None
    unended_freezes: list[Freeze]

    @cached_property
    def etag(self) -> str:
        parts = [
            ",".join(f.id for f in self.unended_freezes),
            self.mode.etag,
            self.active.etag if self.active else "-",
            ",".join(f"{s.value}={self.counts[s]}" for s in PlanState),
            self.last_activation[1] if self.last_activation else "-",
        ]
        return combined_etag(*parts)


def cooldown_of(
    cooldown: timedelta, last: tuple[datetime, str] | None, now: datetime
) -> CooldownStatus:
    """The cooldown after the last activation (time, plan id), at ``now``."""
    return CooldownStatus(
        cooldown,
        last[0] if last else None,
        f"plans/{last[1]}" if last else None,
        now,
    )


def cooldown_in(uow: UnitOfWork, cooldown: timedelta, now: datetime) -> CooldownStatus:
    """The cooldown as the caller's transaction sees it."""
    return cooldown_of(cooldown, uow.plans.last_activation(), now)


class GovernanceState:
    """The read side of governance: the state snapshot, the cooldown, the mode."""

    def __init__(self, store: Store, clock: Clock, cooldown: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._cooldown = cooldown
        self.read_cache: ReadCache[StoredFacts] = ReadCache(store)
        # (facts, active freeze ids, verdicts, etag) of the last snapshot.
        self._derived: tuple[StoredFacts, tuple[str, ...], list[Verdict], str] | None = None

    async def cooldown_status(self) -> CooldownStatus:
        """When the next plan may be published."""
        now = self._clock.now()
        return await self._store.read(lambda uow: cooldown_in(uow, self._cooldown, now))

    async def mode(self) -> ModeSetting:
        """The governance mode."""
        return await self._store.read(lambda uow: uow.modes.get())

    async def snapshot(self) -> GovernanceSnapshot:
        """Mode, active plan, counts and cooldown, read together."""
        facts = await self.read_cache.get(self._read_facts)
        now = self._clock.now()
        cooldown = cooldown_of(self._cooldown, facts.last_activation, now)
        freezes = [f for f in facts.unended_freezes if f.active_at(now)]
        # Verdicts and etag depend on the facts and on which freezes are
        # active, not on the time itself: computed once per change.
        active_ids = tuple(f.id for f in freezes)
        derived = self._derived
        if derived is None or derived[0] is not facts or derived[1] != active_ids:
            derived = self._derived = (
                facts,
                active_ids,
                *self._verdicts_and_etag(facts, freezes, now),
            )
        verdicts, etag = derived[2], derived[3]
        return GovernanceSnapshot(
            facts.mode, facts.active, facts.counts, cooldown, freezes, verdicts, now, etag
        )

    @staticmethod
    def _verdicts_and_etag(
        facts: StoredFacts, freezes: list[Freeze], now: datetime
    ) -> tuple[list[Verdict], str]:
        verdicts = [verdict(op, freezes, now) for op in Operation]
        if len(freezes) == len(facts.unended_freezes):
            return verdicts, facts.etag
        # The etag changes when a freeze expires by the clock, before the
        # expiry task has recorded it.
        return verdicts, combined_etag(facts.etag, ",".join(f.id for f in freezes))

    async def _read_facts(self) -> StoredFacts:
        return await self._store.read(
            lambda uow: StoredFacts(
                uow.modes.get(),
                uow.plans.active(),
                uow.plans.count_by_state(),
                uow.plans.last_activation(),
                uow.freezes.unended(),
            )
        )
