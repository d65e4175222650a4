"""Freeze use cases: freeze, unfreeze, list, check; expiry is in expiry.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from govex_server.domain import filters, list_filters
from govex_server.domain.clock import Clock
from govex_server.domain.errors import failed_precondition, invalid_field, not_found
from govex_server.domain.events import FREEZE_KINDS, DomainEvent, EventKind
from govex_server.domain.freezes import (
    Freeze,
    FreezeEnd,
    FreezeType,
    Operation,
    Verdict,
    resolve_expiry,
    verdict,
)
from govex_server.domain.ids import UlidFactory, parse_name
from govex_server.domain.paging import filter_key, next_token, parse_page
from govex_server.domain.principals import Principal
from govex_server.services.plan_changes import MAX_TEXT
from govex_server.services.read_cache import ReadCache
from govex_server.services.recorder import Call, Recorder
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store, UnitOfWork

FREEZE_KINDS_STORED = frozenset(k.value for k in FREEZE_KINDS)


@dataclass(frozen=True)
class FreezePage:
    """One page of ListFreezes."""

    freezes: list[Freeze]
    next_page_token: str


def _reason(value: str) -> str:
    if not value.strip():
        raise invalid_field("reason", "required")
    if len(value) > MAX_TEXT:
        raise invalid_field("reason", f"{len(value)} characters: at most {MAX_TEXT}")
    return value


class FreezeService:
    """Freezes and the operation checks they imply."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        rederive_in: Callable[[UnitOfWork], object],
        ids: UlidFactory | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        # The policy re-derivation, run inside every unit that starts or
        # ends a freeze: the freeze and the policy it clamps commit together,
        # so a read after the response (on any replica) sees both.
        self._rederive_in = rederive_in
        self._recorder = recorder or Recorder()
        self._store = store
        self._clock = clock
        self._ids = ids or UlidFactory()
        self.read_cache: ReadCache[list[Freeze]] = ReadCache(store, FREEZE_KINDS_STORED)

    async def freeze(
        self,
        actor: Principal,
        freeze_type: FreezeType,
        reason: str,
        ttl: timedelta | None,
        expire_time: datetime | None,
        call: Call | None = None,
    ) -> Freeze:
        """A new active freeze."""
        _reason(reason)
        now = self._clock.now()
        expires = resolve_expiry(now, ttl, expire_time)
        created = Freeze(self._ids.new(now), freeze_type, reason, actor.name, now, expires)

        def unit(uow: UnitOfWork) -> Freeze:
            uow.freezes.add(created)
            self._record(
                uow, actor, "Freeze", EventKind.FREEZE_CREATED, created, reason, call, created
            )
            # After the freeze's event: readers see the cause, then the effect.
            self._rederive_in(uow)
            return created

        return await self._store.write(unit)

    async def unfreeze(
        self,
        actor: Principal,
        name: str,
        lift_all: bool,
        reason: str,
        call: Call | None = None,
    ) -> list[Freeze]:
        """Lifts one freeze by name, or every active one with ``lift_all``."""
        _reason(reason)
        if lift_all and name:
            raise invalid_field("name", "give a name or all=true, not both")
        freeze_id = None if lift_all else parse_name(name, "freezes")

        def unit(uow: UnitOfWork) -> list[Freeze]:
            now = self._clock.now()
            if freeze_id is not None:
                found = uow.freezes.get(freeze_id)
                if found is None:
                    raise not_found("govex.io/Freeze", name)
                if not found.active_at(now):
                    raise failed_precondition(
                        "FREEZE_ENDED",
                        found.name,
                        f"{found.name} already ended "
                        f"({found.end.value if found.end else 'expired'})",
                    )
                targets = [found]
            else:
                targets = [f for f in uow.freezes.unended() if f.active_at(now)]
            lifted = []
            for freeze in targets:
                ended = replace(
                    freeze,
                    end_time=now,
                    end=FreezeEnd.LIFTED,
                    ended_by=actor.name,
                    end_reason=reason,
                )
                if uow.freezes.end(ended):
                    lifted.append(ended)
            for index, ended in enumerate(lifted):
                last = index == len(lifted) - 1
                self._record(
                    uow,
                    actor,
                    "Unfreeze",
                    EventKind.FREEZE_LIFTED,
                    ended,
                    reason,
                    call if last else None,
                    lifted,
                )
            if lifted:
                self._rederive_in(uow)
            else:
                # Nothing was active: the request is still audited (and
                # replayed by its request_id), with no event.
                self._recorder.record(
                    uow,
                    call,
                    AuditRecord.by(
                        actor,
                        at=now,
                        rpc="Unfreeze",
                        resource="freezes",
                        reason=reason,
                        details={"lifted": 0},
                    ),
                    (),
                    lifted,
                )
            return lifted

        return await self._store.write(unit)

    async def expire_due(self) -> list[Freeze]:
        """Ends every freeze whose expire time has passed, writing one
        FREEZE_EXPIRED event each. Safe to run on several replicas at once:
        the conditional end lets only one of them record each expiry."""

        def unit(uow: UnitOfWork) -> list[Freeze]:
            expired = []
            now = self._clock.now()
            for freeze in uow.freezes.unended():
                if freeze.expire_time > now:
                    continue
                ended = replace(
                    freeze,
                    end_time=freeze.expire_time,
                    end=FreezeEnd.EXPIRED,
                    end_reason="expired",
                )
                if uow.freezes.end(ended):
                    self._recorder.record(
                        uow,
                        None,
                        AuditRecord.by(
                            None,
                            at=now,
                            rpc="FreezeExpiry",
                            resource=ended.name,
                            reason="expired",
                            details={"expire_time": ended.expire_time.isoformat()},
                        ),
                        [DomainEvent(EventKind.FREEZE_EXPIRED, now, "", ended.name, ended)],
                    )
                    expired.append(ended)
            if expired:
                self._rederive_in(uow)
            return expired

        return await self._store.write(unit)

    async def next_expiry(self) -> datetime | None:
        """The earliest expire time of the freezes not ended yet."""
        unended = await self._store.read(lambda uow: uow.freezes.unended())
        return min((f.expire_time for f in unended), default=None)

    async def active(self) -> list[Freeze]:
        """The freezes active now (compared with the clock, not only the store).

        Asked before every order is sent, so the unended freezes are cached
        and dropped on every freeze event at its commit (before the Freeze
        response leaves): a new freeze is seen by the very next send."""
        unended = await self.read_cache.get(
            lambda: self._store.read(lambda uow: uow.freezes.unended())
        )
        now = self._clock.now()
        return [f for f in unended if f.active_at(now)]

    async def check(self, operation: Operation) -> Verdict:
        """Whether ``operation`` is allowed now."""
        return verdict(operation, await self.active(), self._clock.now())

    async def get(self, name: str) -> Freeze:
        """One freeze, active or ended; NOT_FOUND when there is none."""
        freeze_id = parse_name(name, "freezes", "name")
        freeze = await self._store.read(lambda uow: uow.freezes.get(freeze_id))
        if freeze is None:
            raise not_found("govex.io/Freeze", name)
        return freeze

    async def list(
        self,
        include_ended: bool,
        types: Sequence[FreezeType],
        page_size: int,
        page_token: str,
        filter_text: str = "",
    ) -> FreezePage:
        """Freezes newest first: active ones, or all with ``include_ended``;
        meeting the AIP-160 ``filter_text``."""
        conditions = filters.parse(filter_text, list_filters.FREEZES)
        key = filter_key(
            [str(include_ended), *sorted(t.value for t in types), *filters.key(conditions)]
        )
        page = parse_page(page_size, page_token, key)
        now = self._clock.now()
        found: list[Freeze] = []
        after = page.after_id
        # Unended rows past their expire time are not active: skip them
        # (the expiry task is about to end them) and read on.
        while len(found) <= page.size:
            after_id = after
            rows = await self._store.read(
                lambda uow: uow.freezes.list(
                    include_ended,
                    types,
                    after_id,  # noqa: B023 - awaited at once
                    page.size + 1,
                    conditions,
                )
            )
            found += [f for f in rows if include_ended or f.active_at(now)]
            if len(rows) <= page.size:
                break
            after = rows[-1].id
        more = len(found) > page.size
        found = found[: page.size]
        return FreezePage(found, next_token(page, found[-1].id if found else None, more))

    def _record(
        self,
        uow: UnitOfWork,
        actor: Principal,
        rpc: str,
        kind: EventKind,
        freeze: Freeze,
        reason: str,
        call: Call | None,
        result: object,
    ) -> None:
        now = self._clock.now()
        self._recorder.record(
            uow,
            call,
            AuditRecord.by(
                actor,
                at=now,
                rpc=rpc,
                resource=freeze.name,
                reason=reason,
                details={"type": freeze.type.value, "expire_time": freeze.expire_time.isoformat()},
            ),
            [DomainEvent(kind, now, actor.name, freeze.name, freeze)],
            result,
        )
