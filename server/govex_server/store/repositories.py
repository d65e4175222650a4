"""Repositories: domain objects in and out of the tables, nothing more."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from govex_server.domain.events import DomainEvent
from govex_server.domain.filters import Condition
from govex_server.domain.freezes import Freeze, FreezeEnd, FreezeType
from govex_server.domain.governance import GovernanceMode, ModeSetting
from govex_server.domain.plans import Plan, PlanState, Step, Target
from govex_server.domain.principals import PrincipalKind
from govex_server.store import tables as t
from govex_server.store.filtering import where
from govex_server.store.prepared import Prepared

_STEP_NAMES = ("reviewed", "approved", "activated", "rejected", "cancelled")

# The statements of the hot paths are built once, with bound parameters:
# building one per call (``.values(...)`` with literals) cost more than
# SQLite executing it.
_PLAN_BY_ID = select(t.plans).where(t.plans.c.id == bindparam("b_id"))
_PLAN_INSERT = Prepared(insert(t.plans), [c.key for c in t.plans.c])
_PLAN_UPDATE = update(t.plans).where(
    t.plans.c.id == bindparam("b_id"), t.plans.c.version == bindparam("b_version")
)
_MODE_SELECT = select(
    t.governance_mode.c.mode,
    t.governance_mode.c.version,
    t.governance_mode.c.updated_at,
    t.governance_mode.c.updated_by,
).where(t.governance_mode.c.id == 1)
_MODE = Prepared(_MODE_SELECT)
_MODE_FOR_UPDATE = Prepared(_MODE_SELECT.with_for_update())
# Takes ``b_count`` sequences at once; the newest of them is returned.
_TAKE_SEQUENCES = Prepared(
    update(t.event_counter)
    .where(t.event_counter.c.id == 1)
    .values(value=t.event_counter.c.value + bindparam("b_count"))
    .returning(t.event_counter.c.value)
)
_EVENT_INSERT = Prepared(insert(t.events), [c.key for c in t.events.c])
_COUNTER = Prepared(select(t.event_counter.c.value).where(t.event_counter.c.id == 1))
# The counter moves only from the value the batch started at.
_COUNTER_MOVE = Prepared(
    update(t.event_counter)
    .where(t.event_counter.c.id == 1, t.event_counter.c.value == bindparam("b_value"))
    .values(value=bindparam("n_value"))
)


def _step_to_json(step: Step) -> dict[str, str]:
    return {
        "principal": step.principal,
        "kind": step.kind.value,
        "time": step.time.isoformat(),
        "comment": step.comment,
    }


def _step_from_json(data: dict[str, str]) -> Step:
    return Step(
        data["principal"],
        PrincipalKind(data["kind"]),
        datetime.fromisoformat(data["time"]),
        data.get("comment", ""),
    )


def _plan_row(plan: Plan) -> dict[str, Any]:
    steps = {"proposed": _step_to_json(plan.proposed)}
    for step_name in _STEP_NAMES:
        step = getattr(plan, step_name)
        if step is not None:
            steps[step_name] = _step_to_json(step)
    return {
        "id": plan.id,
        "state": plan.state.value,
        "version": plan.version,
        # [asset, weight], and a third element ``true`` for a hedge: rows
        # written before hedges existed read the same.
        "targets": [
            [tg.asset, tg.weight_percent, *([True] if tg.hedge else [])] for tg in plan.targets
        ],
        "reason": plan.reason,
        "proposed_by": plan.proposed.principal,
        "proposed_under_mode": plan.proposed_under_mode,
        "steps": steps,
        "activated_at": plan.activated.time if plan.activated else None,
        "executed_at": plan.execute_time,
        "cooldown_overridden": plan.cooldown_overridden,
        "created_at": plan.create_time,
        "updated_at": plan.update_time,
    }


def _plan_from_row(row: RowMapping) -> Plan:
    steps = row["steps"]
    optional = {
        name: _step_from_json(steps[name]) if name in steps else None for name in _STEP_NAMES
    }
    return Plan(
        id=row["id"],
        state=PlanState(row["state"]),
        targets=tuple(
            Target(str(t[0]), float(t[1]), len(t) > 2 and bool(t[2])) for t in row["targets"]
        ),
        reason=row["reason"],
        version=row["version"],
        proposed=_step_from_json(steps["proposed"]),
        proposed_under_mode=row["proposed_under_mode"],
        create_time=row["created_at"],
        update_time=row["updated_at"],
        execute_time=row["executed_at"],
        cooldown_overridden=bool(row["cooldown_overridden"]),
        **optional,
    )


class PlanRepository:
    """Plans. Writes are conditional on the version read (optimistic locking)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, plan_id: str) -> Plan | None:
        """The plan, or None."""
        result = self._conn.execute(_PLAN_BY_ID, {"b_id": plan_id})
        row = result.mappings().first()
        return _plan_from_row(row) if row else None

    def add(self, plan: Plan) -> None:
        """Inserts a new plan."""
        _PLAN_INSERT.execute(self._conn, _plan_row(plan))

    def replace(self, plan: Plan, expected_version: int) -> bool:
        """Writes ``plan`` if the stored version is still ``expected_version``.
        False means somebody else wrote first: the caller answers ABORTED."""
        row = _plan_row(plan)
        del row["id"]
        result = self._conn.execute(
            _PLAN_UPDATE, {**row, "b_id": plan.id, "b_version": expected_version}
        )
        return result.rowcount == 1

    def active(self) -> Plan | None:
        """The ACTIVE plan, if any."""
        result = self._conn.execute(
            select(t.plans).where(t.plans.c.state == PlanState.ACTIVE.value)
        )
        row = result.mappings().first()
        return _plan_from_row(row) if row else None

    def list(
        self,
        states: Sequence[PlanState],
        before_id: str | None,
        limit: int,
        conditions: Sequence[Condition] = (),
    ) -> list[Plan]:
        """Plans newest first (ids sort by creation), optionally only ``states``,
        strictly older than ``before_id``, meeting the filter."""
        p = t.plans
        columns = {
            "state": p.c.state,
            "proposed_under_mode": p.c.proposed_under_mode,
            "create_time": p.c.created_at,
            "update_time": p.c.updated_at,
        }
        query = select(p).where(*where(conditions, columns)).order_by(p.c.id.desc()).limit(limit)
        if states:
            query = query.where(t.plans.c.state.in_([s.value for s in states]))
        if before_id is not None:
            query = query.where(t.plans.c.id < before_id)
        result = self._conn.execute(query)
        return [_plan_from_row(row) for row in result.mappings()]

    def count_by_state(self) -> dict[PlanState, int]:
        """Number of plans in every state (zero included)."""
        result = self._conn.execute(select(t.plans.c.state, func.count()).group_by(t.plans.c.state))
        counts = dict.fromkeys(PlanState, 0)
        for state, count in result.all():
            counts[PlanState(state)] = int(count)
        return counts

    def last_activation(self) -> tuple[datetime, str] | None:
        """Time and id of the newest activation ever (cancelled plans included:
        the cooldown counts publications, not what became of them)."""
        result = self._conn.execute(
            select(t.plans.c.activated_at, t.plans.c.id)
            .where(t.plans.c.activated_at.is_not(None))
            .order_by(t.plans.c.activated_at.desc(), t.plans.c.id.desc())
            .limit(1)
        )
        row = result.first()
        return (row[0], row[1]) if row else None


class ModeRepository:
    """The governance mode singleton (row id 1, created by the migration)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, *, for_update: bool = False) -> ModeSetting:
        """The current mode. ``for_update`` locks the row until commit, which
        serialises activations across replicas on PostgreSQL."""
        row = (_MODE_FOR_UPDATE if for_update else _MODE).first(self._conn)
        if row is None:
            raise RuntimeError("the governance_mode row is missing: the database is not migrated")
        mode, version, updated_at, updated_by = row
        return ModeSetting(GovernanceMode(mode), version, updated_at, updated_by)

    def replace(self, setting: ModeSetting, expected_version: int) -> bool:
        """Conditional write, like PlanRepository.replace."""
        result = self._conn.execute(
            update(t.governance_mode)
            .where(t.governance_mode.c.id == 1, t.governance_mode.c.version == expected_version)
            .values(
                mode=setting.mode.value,
                version=setting.version,
                updated_at=setting.update_time,
                updated_by=setting.updated_by,
            )
        )
        return result.rowcount == 1


def _freeze_from_row(row: RowMapping) -> Freeze:
    return Freeze(
        id=row["id"],
        type=FreezeType(row["type"]),
        reason=row["reason"],
        actor=row["actor"],
        create_time=row["created_at"],
        expire_time=row["expire_time"],
        end_time=row["end_time"],
        end=FreezeEnd(row["end_kind"]) if row["end_kind"] else None,
        ended_by=row["ended_by"],
        end_reason=row["end_reason"],
    )


class FreezeRepository:
    """Freezes. Ending one is conditional on it not having ended yet, so that
    a lift and an expiry (or two replicas' expiries) end it exactly once."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, freeze: Freeze) -> None:
        """Inserts a new freeze."""
        self._conn.execute(
            insert(t.freezes).values(
                id=freeze.id,
                type=freeze.type.value,
                reason=freeze.reason,
                actor=freeze.actor,
                created_at=freeze.create_time,
                expire_time=freeze.expire_time,
                end_time=None,
                end_kind=None,
                ended_by="",
                end_reason="",
            )
        )

    def get(self, freeze_id: str) -> Freeze | None:
        """The freeze, or None."""
        result = self._conn.execute(select(t.freezes).where(t.freezes.c.id == freeze_id))
        row = result.mappings().first()
        return _freeze_from_row(row) if row else None

    def unended(self) -> list[Freeze]:
        """Freezes not ended yet (some may be past their expire time)."""
        result = self._conn.execute(
            select(t.freezes).where(t.freezes.c.end_kind.is_(None)).order_by(t.freezes.c.id)
        )
        return [_freeze_from_row(row) for row in result.mappings()]

    def end(self, freeze: Freeze) -> bool:
        """Records how ``freeze`` ended; False if it had already ended."""
        assert freeze.end is not None
        result = self._conn.execute(
            update(t.freezes)
            .where(t.freezes.c.id == freeze.id, t.freezes.c.end_kind.is_(None))
            .values(
                end_time=freeze.end_time,
                end_kind=freeze.end.value,
                ended_by=freeze.ended_by,
                end_reason=freeze.end_reason,
            )
        )
        return result.rowcount == 1

    def list(
        self,
        include_ended: bool,
        types: Sequence[FreezeType],
        before_id: str | None,
        limit: int,
        conditions: Sequence[Condition] = (),
    ) -> list[Freeze]:
        """Freezes newest first; without ``include_ended`` only those not ended
        (the caller drops the ones past their expire time); meeting the filter."""
        f = t.freezes
        columns = {
            "type": f.c.type,
            "actor": f.c.actor,
            "create_time": f.c.created_at,
            "expire_time": f.c.expire_time,
            "end_time": f.c.end_time,
        }
        query = select(f).where(*where(conditions, columns)).order_by(f.c.id.desc()).limit(limit)
        if not include_ended:
            query = query.where(t.freezes.c.end_kind.is_(None))
        if types:
            query = query.where(t.freezes.c.type.in_([ty.value for ty in types]))
        if before_id is not None:
            query = query.where(t.freezes.c.id < before_id)
        result = self._conn.execute(query)
        return [_freeze_from_row(row) for row in result.mappings()]


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored: its sequence, kind and serialized payload."""

    sequence: int
    kind: str
    payload: bytes
    resource: str = ""
    # The change itself, for in-process observers (metrics, logs) of the
    # replica that wrote it; None when read back from the database.
    change: DomainEvent | None = field(default=None, compare=False)


EventEncoder = Callable[[DomainEvent, int], bytes]


def numbered(
    encode: EventEncoder, after: int, events: list[DomainEvent]
) -> tuple[list[dict[str, Any]], list[StoredEvent]]:
    """The rows (and stored forms) of ``events`` numbered from ``after + 1``."""
    rows = []
    stored = []
    for sequence, event in enumerate(events, start=after + 1):
        payload = encode(event, sequence)
        rows.append(
            {
                "sequence": sequence,
                "kind": event.kind.value,
                "time": event.time,
                "actor": event.actor,
                "resource": event.resource,
                "payload": payload,
            }
        )
        stored.append(StoredEvent(sequence, event.kind.value, payload, event.resource, event))
    return rows, stored


def counter_value(conn: Connection) -> int:
    """The newest sequence given out (read in the writer's transaction)."""
    row = _COUNTER.first(conn)
    if row is None:
        raise RuntimeError("the event_counter row is missing: the database is not migrated")
    return int(row[0])


def write_numbered(conn: Connection, old: int, new: int, rows: list[dict[str, Any]]) -> bool:
    """Moves the counter from ``old`` to ``new`` and inserts ``rows``; False
    (nothing written) when the counter is not at ``old``."""
    if _COUNTER_MOVE.execute(conn, {"b_value": old, "n_value": new}) != 1:
        return False
    _EVENT_INSERT.execute_many(conn, rows)
    return True


class EventRepository:
    """The event log: appended in the transaction of the change it records.

    Events are numbered late: ``append`` only keeps the event, and ``flush``
    (which the store runs as the unit's last statement before its commit)
    takes their sequences with one update of the counter and inserts them.
    The SQLite writer numbers each unit's events inside the unit's savepoint
    and inserts those of the whole batch before it commits (batch_ledger.py).
    The counter's row lock, which every event-writing transaction of every
    replica needs, is so held from the end of the transaction to its commit,
    not across all its statements; sequences stay gap-free and increasing in
    commit order (a transaction that took its numbers commits before the
    next one can take any).

    What one unit of work recorded is kept in ``appended``: the store hands it
    to the event bus once the transaction has committed, so the replica that
    wrote an event never reads it back from the database."""

    def __init__(self, conn: Connection, encode: EventEncoder) -> None:
        self._conn = conn
        self._encode = encode
        self._pending: list[DomainEvent] = []
        self.appended: list[StoredEvent] = []

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds of event this unit of work appended."""
        return frozenset(e.kind for e in self.appended) | {e.kind.value for e in self._pending}

    def append(self, event: DomainEvent) -> None:
        """Records ``event``; it is numbered and inserted by ``flush``."""
        self._pending.append(event)

    def flush(self) -> None:
        """Numbers and inserts the events appended since the last flush."""
        events = self.take_pending()
        if not events:
            return
        taken = _TAKE_SEQUENCES.first(self._conn, {"b_count": len(events)})
        if taken is None:
            raise RuntimeError("the event_counter row is missing: the database is not migrated")
        rows, stored = numbered(self._encode, int(taken[0]) - len(events), events)
        _EVENT_INSERT.execute_many(self._conn, rows)
        self.appended.extend(stored)

    def take_pending(self) -> list[DomainEvent]:
        """The events appended and not flushed (the SQLite writer numbers
        those of a whole batch at once, as its last statements)."""
        events, self._pending = self._pending, []
        return events

    def after(self, sequence: int, kinds: Sequence[str] | None, limit: int) -> list[StoredEvent]:
        """Events after ``sequence`` in order, optionally only ``kinds``."""
        query = (
            select(t.events.c.sequence, t.events.c.kind, t.events.c.payload, t.events.c.resource)
            .where(t.events.c.sequence > sequence)
            .order_by(t.events.c.sequence)
            .limit(limit)
        )
        if kinds is not None:
            query = query.where(t.events.c.kind.in_(list(kinds)))
        result = self._conn.execute(query)
        return [StoredEvent(int(r[0]), r[1], bytes(r[2]), r[3]) for r in result.all()]

    def newest(self) -> int:
        """The newest sequence given out (0 before the first event)."""
        result = self._conn.execute(
            select(t.event_counter.c.value).where(t.event_counter.c.id == 1)
        )
        return int(result.scalar_one())

    def oldest(self) -> int | None:
        """The oldest sequence still retained, None when none is."""
        result = self._conn.execute(select(func.min(t.events.c.sequence)))
        value = result.scalar_one()
        return int(value) if value is not None else None

    def delete_before(self, cutoff: datetime, keep_newest: int) -> int:
        """Deletes events older than ``cutoff``, except the newest
        ``keep_newest`` ones (a quiet system keeps its recent history)."""
        newest = self.newest()
        result = self._conn.execute(
            delete(t.events).where(
                t.events.c.time < cutoff, t.events.c.sequence <= newest - keep_newest
            )
        )
        return int(result.rowcount)
