"""Signals in, policy out: publication, re-derivation when time or freezes
move the state, and what the full_ai bounds need to know."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from govex_server.domain import filters, list_filters
from govex_server.domain.clock import Clock
from govex_server.domain.errors import Category, GovexError
from govex_server.domain.events import DomainEvent, EventKind
from govex_server.domain.freezes import Freeze
from govex_server.domain.ids import UlidFactory
from govex_server.domain.paging import filter_key, next_token, parse_page
from govex_server.domain.phase import PhaseSettings, PhaseState, advance
from govex_server.domain.policy import (
    Derivation,
    Freshness,
    Policy,
    PolicyState,
    derive,
    next_time_change,
)
from govex_server.domain.policy_settings import PolicySettings
from govex_server.domain.principals import Principal
from govex_server.domain.signals import SignalSet, validate_signals
from govex_server.services.read_cache import ReadCache
from govex_server.services.recorder import Call, Recorder
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store, UnitOfWork


@dataclass(frozen=True)
class PolicyView:
    """The policy in force and where it comes from."""

    signals: SignalSet | None
    policy: Policy
    freshness: Freshness
    phase: PhaseState
    now: datetime

    @property
    def age(self) -> timedelta | None:
        """Age of the current signals."""
        return None if self.signals is None else self.now - self.signals.as_of


class PolicyService:
    """The policy engine around the pure derivation."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: PolicySettings,
        phase_settings: PhaseSettings,
        future_skew: timedelta = timedelta(seconds=30),
        ids: UlidFactory | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self._recorder = recorder or Recorder()
        self._store = store
        self._clock = clock
        self._settings = settings
        self._phase_settings = phase_settings
        self._skew = future_skew
        self._ids = ids or UlidFactory()
        self._default: Policy | None = None
        self.read_cache: ReadCache[tuple[PolicyState, PhaseState, SignalSet | None]] = ReadCache(
            store
        )

    async def publish(
        self, actor: Principal, signals: SignalSet, call: Call | None = None
    ) -> PolicyView:
        """Validates and stores a set, derives the policy from it, records
        what changed; nothing is stored when the set is refused."""

        def unit(uow: UnitOfWork) -> PolicyView:
            now = self._clock.now()
            current = uow.signals.current()
            validate_signals(signals, now, current.as_of if current else None, self._skew)
            stored = replace(signals, publisher=actor.name, receive_time=now, id=self._ids.new(now))
            version, state, phase = uow.policy.get(for_update=True)
            freezes = uow.freezes.unended()
            derivation = derive(stored, state, freezes, now, self._settings, new_set=True)
            new_phase, phase_changed = advance(phase, stored, now, self._phase_settings)
            uow.signals.add(stored.id, stored)
            uow.events.append(
                DomainEvent(EventKind.SIGNALS_PUBLISHED, now, actor.name, "signals", stored)
            )
            self._record_changes(uow, actor.name, now, state, derivation, freezes)
            if phase_changed:
                uow.events.append(
                    DomainEvent(EventKind.PHASE_CHANGED, now, actor.name, "phase", new_phase)
                )
            self._save(uow, version, derivation.state, new_phase)
            view = PolicyView(stored, derivation.policy, derivation.state.freshness, new_phase, now)
            audit = AuditRecord.by(
                actor,
                at=now,
                rpc="PublishSignals",
                resource="signals",
                reason=stored.source,
                details={"as_of": stored.as_of.isoformat(), "mode": derivation.policy.mode.name},
            )
            self._recorder.record(uow, call, audit, (), view)
            return view

        return await self._store.write(unit)

    async def rederive(self) -> bool:
        """Derives again from the current set (time passed, freezes changed);
        writes only when the policy or the freshness changed."""
        return await self._store.write(self.rederive_in)

    def rederive_in(self, uow: UnitOfWork) -> bool:
        """``rederive`` inside a caller's transaction (the one that starts or
        ends a freeze). Never smooths the cap again (POLICY.md step 8)."""
        now = self._clock.now()
        version, state, phase = uow.policy.get(for_update=True)
        signals = uow.signals.current()
        freezes = uow.freezes.unended()
        derivation = derive(signals, state, freezes, now, self._settings)
        before = state.policy or self._default_policy(now)
        unchanged = (
            derivation.policy.same_values(before)
            and derivation.state.freshness is state.freshness
            and derivation.state.prudent is state.prudent
        )
        if unchanged and derivation.state.freeze_ids == state.freeze_ids:
            return False
        self._record_changes(uow, "", now, state, derivation, freezes)
        self._save(uow, version, derivation.state, phase)
        return not unchanged

    async def history(
        self, page_size: int, page_token: str, filter_text: str = ""
    ) -> tuple[list[SignalSet], str]:
        """Published sets, newest received first, meeting the AIP-160
        ``filter_text``; and the next page's token."""
        conditions = filters.parse(filter_text, list_filters.SIGNAL_SETS)
        page = parse_page(page_size, page_token, filter_key(filters.key(conditions)))
        found = await self._store.read(
            lambda uow: uow.signals.list(conditions, page.after_id, page.size + 1)
        )
        sets = found[: page.size]
        return sets, next_token(page, sets[-1].id if sets else None, len(found) > page.size)

    async def view(self) -> PolicyView:
        """The policy in force now (as last derived) and its inputs."""
        state, phase, signals = await self.read_cache.get(self._read_view)
        now = self._clock.now()
        policy = state.policy or self._default_policy(now)
        return PolicyView(signals, policy, state.freshness, phase, now)

    async def _read_view(self) -> tuple[PolicyState, PhaseState, SignalSet | None]:
        def unit(uow: UnitOfWork) -> tuple[PolicyState, PhaseState, SignalSet | None]:
            _, state, phase = uow.policy.get()
            return state, phase, uow.signals.current()

        return await self._store.read(unit)

    def view_in(self, uow: UnitOfWork) -> PolicyView:
        """``view`` inside a caller's transaction."""
        now = self._clock.now()
        _, state, phase = uow.policy.get()
        signals = uow.signals.current()
        policy = state.policy or self._default_policy(now)
        return PolicyView(signals, policy, state.freshness, phase, now)

    async def next_time_change(self) -> datetime | None:
        """When time alone will move the derivation next."""

        def unit(uow: UnitOfWork) -> datetime | None:
            _, state, _ = uow.policy.get()
            return next_time_change(uow.signals.current(), state, self._settings)

        return await self._store.read(unit)

    async def freezes_changed(self) -> bool:
        """True when the active freezes differ from those of the last derivation."""

        def unit(uow: UnitOfWork) -> tuple[PolicyState, list[Freeze]]:
            return uow.policy.get()[1], uow.freezes.unended()

        state, unended = await self._store.read(unit)
        now = self._clock.now()
        return tuple(sorted(f.id for f in unended if f.active_at(now))) != state.freeze_ids

    def young_enough(self, view: PolicyView) -> bool:
        """True when the signals are under the stale age now, even if the
        timer has not recorded a crossing yet."""
        return view.age is not None and view.age <= self._settings.stale_after

    def _default_policy(self, now: datetime) -> Policy:
        # Derived once: it depends on no input, and a derive time that moved
        # with every read would make every read a change.
        if self._default is None:
            self._default = derive(None, PolicyState(), [], now, self._settings).policy
        return self._default

    def _record_changes(
        self,
        uow: UnitOfWork,
        actor: str,
        now: datetime,
        before: PolicyState,
        derivation: Derivation,
        freezes: list[Freeze],
    ) -> None:
        del freezes  # the derivation already names the freezes it applied
        previous = before.policy or self._default_policy(now)
        if derivation.state.freshness is not before.freshness:
            uow.events.append(
                DomainEvent(
                    EventKind.SIGNALS_FRESHNESS_CHANGED,
                    now,
                    actor,
                    "signals",
                    derivation.state.freshness,
                )
            )
        if not derivation.policy.same_values(previous):
            uow.events.append(
                DomainEvent(EventKind.POLICY_CHANGED, now, actor, "policy", derivation.policy)
            )

    def _save(self, uow: UnitOfWork, version: int, state: PolicyState, phase: PhaseState) -> None:
        if not uow.policy.put(version, state, phase):
            raise GovexError(
                Category.ABORTED, "CONFLICT", "the policy state changed concurrently; retry"
            )
