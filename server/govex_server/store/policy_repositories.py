"""Signal sets (the history) and the policy engine's persisted state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from govex_server.domain.filters import Condition
from govex_server.domain.phase import PhaseState
from govex_server.domain.policy import PolicyState
from govex_server.domain.signals import SignalSet
from govex_server.store import tables as t
from govex_server.store.filtering import where


class SignalRepository:
    """Published signal sets (kept as history)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, set_id: str, signals: SignalSet) -> None:
        """Stores one set."""
        self._conn.execute(
            insert(t.signal_sets).values(
                id=set_id,
                as_of=signals.as_of,
                publisher=signals.publisher,
                payload=signals.to_json(),
            )
        )

    def current(self) -> SignalSet | None:
        """The newest set by as_of (then by arrival)."""
        result = self._conn.execute(
            select(t.signal_sets.c.id, t.signal_sets.c.payload)
            .order_by(t.signal_sets.c.as_of.desc(), t.signal_sets.c.id.desc())
            .limit(1)
        )
        row = result.first()
        return replace(SignalSet.from_json(row[1]), id=row[0]) if row else None

    def list(
        self, conditions: Sequence[Condition], before_id: str | None, limit: int
    ) -> list[SignalSet]:
        """Sets newest received first (ids sort by arrival), strictly older
        than ``before_id``, meeting the filter."""
        s = t.signal_sets
        columns = {"as_of": s.c.as_of, "publisher": s.c.publisher}
        query = select(s.c.id, s.c.payload).where(*where(conditions, columns))
        if before_id is not None:
            query = query.where(s.c.id < before_id)
        rows = self._conn.execute(query.order_by(s.c.id.desc()).limit(limit))
        return [replace(SignalSet.from_json(payload), id=i) for i, payload in rows.all()]


class PolicyStateRepository:
    """The policy engine's persisted state (one row)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, *, for_update: bool = False) -> tuple[int, PolicyState, PhaseState]:
        """``(version, policy state, phase state)``; ``for_update`` locks the row
        so that replicas derive one after the other."""
        query = select(t.policy_state).where(t.policy_state.c.id == 1)
        if for_update:
            query = query.with_for_update()
        row = self._conn.execute(query).mappings().one()
        policy = PolicyState.from_json(row["policy"]) if row["policy"] else PolicyState()
        phase = PhaseState.from_json(row["phase"]) if row["phase"] else PhaseState()
        return int(row["version"]), policy, phase

    def put(self, version: int, policy: PolicyState, phase: PhaseState) -> bool:
        """Writes the state read at ``version``; False if another writer came
        first (the row lock of ``get(for_update=True)`` prevents that)."""
        result = self._conn.execute(
            update(t.policy_state)
            .where(t.policy_state.c.id == 1, t.policy_state.c.version == version)
            .values(version=version + 1, policy=policy.to_json(), phase=phase.to_json())
        )
        return result.rowcount == 1
