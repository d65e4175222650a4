"""Execution leases in the store: which replica runs an execution, until
when, and under which fencing token (the generation, bumped on every claim).

Only claims, renewals and releases write these columns (the execution's own
writes leave them alone), and every claim is a conditional UPDATE on the
generation read: of two replicas claiming one execution at once, exactly one
matches (on PostgreSQL the second UPDATE waits for the first's row lock and
then finds the generation moved)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from govex_server.store import tables as t
from govex_server.store.execution_repositories import LIVE_STATES
from govex_server.store.prepared import Prepared

_E = t.executions
_CLAIM = (
    update(_E)
    .where(
        _E.c.id == bindparam("b_id"),
        _E.c.lease_generation == bindparam("b_generation"),
        _E.c.state.in_(LIVE_STATES),
    )
    .values(
        owner=bindparam("b_owner"),
        lease_expires=bindparam("b_expires"),
        lease_generation=_E.c.lease_generation + 1,
    )
)
# FOR UPDATE on PostgreSQL: a claim cannot commit between this check and the
# commit of the write it guards (SQLite's one writer gives that already).
# Prepared (prepared.py): every order write of an execution runs it.
_FENCE = Prepared(
    select(_E.c.owner, _E.c.lease_generation, _E.c.state)
    .where(_E.c.id == bindparam("b_id"))
    .with_for_update()
)


class LeaseRepository:
    """Claims, renews, releases and checks execution leases."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def claimable(
        self, owner: str, now: datetime, ignore_expiry: bool
    ) -> list[tuple[str, int, str]]:
        """Live executions without a live owner (unowned, expired, or owned
        by ``owner`` itself), with their generation and owner; every live one
        when ``ignore_expiry`` (a single-process database: no other owner
        can be alive)."""
        query = select(_E.c.id, _E.c.lease_generation, _E.c.owner).where(
            _E.c.state.in_(LIVE_STATES)
        )
        if not ignore_expiry:
            query = query.where(
                (_E.c.owner == "") | (_E.c.owner == owner) | (_E.c.lease_expires < now)
            )
        rows = self._conn.execute(query.order_by(_E.c.id)).all()
        return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    def claim(self, execution_id: str, generation: int, owner: str, expires: datetime) -> bool:
        """Takes the lease if its generation is still ``generation``."""
        result = self._conn.execute(
            _CLAIM,
            {
                "b_id": execution_id,
                "b_generation": generation,
                "b_owner": owner,
                "b_expires": expires,
            },
        )
        return result.rowcount == 1

    def renew(self, owner: str, expires: datetime) -> None:
        """Extends every live lease ``owner`` holds."""
        self._conn.execute(
            update(_E)
            .where(_E.c.owner == owner, _E.c.state.in_(LIVE_STATES))
            .values(lease_expires=expires)
        )

    def leases_of(self, execution_ids: list[str]) -> dict[str, tuple[str, int, bool]]:
        """Owner, generation and whether it is still live, per execution."""
        rows = self._conn.execute(
            select(_E.c.id, _E.c.owner, _E.c.lease_generation, _E.c.state).where(
                _E.c.id.in_(execution_ids)
            )
        ).all()
        return {str(r[0]): (str(r[1]), int(r[2]), r[3] in LIVE_STATES) for r in rows}

    def release(self, owner: str, execution_ids: list[str], expires: datetime) -> None:
        """Shortens leases to ``expires`` (a graceful stop): another replica
        claims them then, not a whole lease later. The owner stays, so the
        claim is told as a takeover from it."""
        if execution_ids:
            self._conn.execute(
                update(_E)
                .where(_E.c.owner == owner, _E.c.id.in_(execution_ids))
                .values(lease_expires=expires)
            )

    def holds(self, execution_id: str, owner: str, generation: int) -> bool:
        """The fence: ``owner`` still holds the lease of ``generation``, or
        the execution has ended (nobody owns it then: reconciliation may
        bring a leftover order to its true state, and the order state
        machine refuses every change of a final order)."""
        row = _FENCE.first(self._conn, {"b_id": execution_id})
        if row is None:
            return False
        if row[2] not in LIVE_STATES:
            return True
        return bool(row[0] == owner and int(row[1]) == generation)
