"""Executions and orders in the store (the daily traded notional: daily_notional.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import bindparam, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from govex_server.domain.execution.legs import Leg
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import (
    LIVE,
    ExecutionRecord,
    ExecutionState,
    OrderRecord,
    OrderTally,
    Strategy,
)
from govex_server.domain.filters import Condition
from govex_server.domain.policy import Policy
from govex_server.store import tables as t
from govex_server.store.filtering import where
from govex_server.store.prepared import Prepared

# Built once with bound parameters (see repositories.py).
_EXECUTION_INSERT = insert(t.executions)
_EXECUTION_BY_ID = select(t.executions).where(t.executions.c.id == bindparam("b_id"))
_EXECUTION_UPDATE = update(t.executions).where(
    t.executions.c.id == bindparam("b_id"), t.executions.c.version == bindparam("b_version")
)
# The statements every order runs several times are Prepared (prepared.py).
_ORDER_INSERT = Prepared(insert(t.orders), [c.key for c in t.orders.c])
_ORDER_BY_ID = select(t.orders).where(t.orders.c.id == bindparam("b_id"))
_ORDER_ID_BY_CLIENT_ID = Prepared(
    select(t.orders.c.id).where(t.orders.c.client_order_id == bindparam("b_cid"))
)
# An order's conditional UPDATE, one statement per set of columns it sets.
_ORDER_UPDATES: dict[tuple[str, ...], Prepared] = {}


def _order_update(columns: tuple[str, ...]) -> Prepared:
    found = _ORDER_UPDATES.get(columns)
    if found is None:
        found = _ORDER_UPDATES[columns] = Prepared(
            update(t.orders).where(
                t.orders.c.id == bindparam("b_id"), t.orders.c.state == bindparam("b_state")
            ),
            list(columns),
        )
    return found


_ORDER_UPDATE_ALL = tuple(c.key for c in t.orders.c if c.key != "id")
# An execution's orders in sending order (GetExecution: a thousand rows
# and more), and the ones still live (read at every turn of its runner).
_SENDING_ORDER = (
    t.orders.c.scheduled_at,
    t.orders.c.leg_index,
    t.orders.c.slice_index,
    t.orders.c.attempt,
)
_OF_EXECUTION = t.orders.c.execution_id == bindparam("b_execution")
_ORDER_FOR_EXECUTION = Prepared(select(t.orders).where(_OF_EXECUTION).order_by(*_SENDING_ORDER))
_LIVE_ORDERS = Prepared(
    select(t.orders)
    .where(
        _OF_EXECUTION,
        # Literals (an IN list would be an expanding parameter, which a
        # Prepared statement does not take).
        or_(*(t.orders.c.state == literal(s.value) for s in OrderState if not s.terminal)),
    )
    .order_by(*_SENDING_ORDER)
)
# What an execution's end counts of its orders (OrderTally's fields).
_TALLIES = Prepared(
    select(*(t.orders.c[f.name] for f in fields(OrderTally)))
    .where(_OF_EXECUTION)
    .order_by(*_SENDING_ORDER)
)


def _execution_row(e: ExecutionRecord) -> dict[str, Any]:
    return {
        "id": e.id,
        "plan_id": e.plan_id,
        "exchange": e.exchange,
        "state": e.state.value,
        "strategy": e.strategy.value,
        "max_parallel": e.max_parallel,
        "safety_level": e.safety_level,
        "actor": e.actor,
        "actor_kind": e.actor_kind,
        "state_reason": e.state_reason,
        "legs": [leg.to_json() for leg in e.legs],
        "policy": e.policy.to_json(),
        "portfolio_value": e.portfolio_value,
        "version": e.version,
        "created_at": e.create_time,
        "ended_at": e.end_time,
    }


def _execution(row: RowMapping) -> ExecutionRecord:
    return ExecutionRecord(
        id=row["id"],
        plan_id=row["plan_id"],
        exchange=row["exchange"],
        state=ExecutionState(row["state"]),
        strategy=Strategy(row["strategy"]),
        max_parallel=row["max_parallel"],
        safety_level=row["safety_level"],
        actor=row["actor"],
        actor_kind=row["actor_kind"],
        legs=tuple(Leg.from_json(leg) for leg in row["legs"]),
        policy=Policy.from_json(row["policy"]),
        portfolio_value=row["portfolio_value"],
        create_time=row["created_at"],
        version=row["version"],
        state_reason=row["state_reason"],
        end_time=row["ended_at"],
        # Only a dry run is stored SIMULATED (it needs no column of its own).
        dry_run=row["state"] == ExecutionState.SIMULATED.value,
    )


_ORDER_FIELDS = tuple(f.name for f in fields(OrderRecord))
# Every field but the key.
_MUTABLE_FIELDS = tuple(f for f in _ORDER_FIELDS if f != "id")


# The record's field names that are column names of their own.
_COLUMN_OF_FIELD = {
    "scheduled_time": "scheduled_at",
    "create_time": "created_at",
    "update_time": "updated_at",
    "send_time": "sent_at",
}


def _order_row(o: OrderRecord) -> dict[str, Any]:
    # Shallow on purpose: asdict() deep-copies every nested dict, which cost
    # more than the UPDATE it feeds (the row is only read by the driver).
    row = {name: getattr(o, name) for name in _ORDER_FIELDS}
    row["state"] = o.state.value
    row["scheduled_at"] = row.pop("scheduled_time")
    row["created_at"] = row.pop("create_time")
    row["updated_at"] = row.pop("update_time")
    row["sent_at"] = row.pop("send_time")
    return row


# OrderRecord's fields as positions in an ``orders`` row (its columns in
# table order): a row becomes a record without a dict per row.
_ORDER_COLUMNS = [c.key for c in t.orders.c]
_ROW_POSITIONS = tuple(_ORDER_COLUMNS.index(_COLUMN_OF_FIELD.get(f, f)) for f in _ORDER_FIELDS)
_STATE_POSITION = _ORDER_FIELDS.index("state")


def _order_of_row(row: Sequence[Any]) -> OrderRecord:
    values = [row[i] for i in _ROW_POSITIONS]
    values[_STATE_POSITION] = OrderState(values[_STATE_POSITION])
    return OrderRecord.of_values(values)


def _order(row: RowMapping | dict[str, Any]) -> OrderRecord:
    data = dict(row)
    data["state"] = OrderState(data["state"])
    data["scheduled_time"] = data.pop("scheduled_at")
    data["create_time"] = data.pop("created_at")
    data["update_time"] = data.pop("updated_at")
    data["send_time"] = data.pop("sent_at")
    return OrderRecord(**data)


# The states of an execution with a runner, as stored.
LIVE_STATES = sorted(state.value for state in LIVE)


class ExecutionRepository:
    """Executions; writes conditional on the version read."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, execution: ExecutionRecord) -> None:
        """Inserts (the one-running-per-plan index may refuse it)."""
        self._conn.execute(_EXECUTION_INSERT, _execution_row(execution))

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """One execution."""
        result = self._conn.execute(_EXECUTION_BY_ID, {"b_id": execution_id})
        row = result.mappings().first()
        return _execution(row) if row else None

    def replace(self, execution: ExecutionRecord, expected_version: int) -> bool:
        """Writes if nobody else did since ``expected_version``."""
        row = _execution_row(execution)
        del row["id"]
        result = self._conn.execute(
            _EXECUTION_UPDATE, {**row, "b_id": execution.id, "b_version": expected_version}
        )
        return result.rowcount == 1

    def count_by_state(self) -> dict[ExecutionState, int]:
        """Number of executions in every state (zero included)."""
        result = self._conn.execute(
            select(t.executions.c.state, func.count()).group_by(t.executions.c.state)
        )
        counts = dict.fromkeys(ExecutionState, 0)
        for state, count in result.all():
            counts[ExecutionState(state)] = int(count)
        return counts

    def running(self) -> list[ExecutionRecord]:
        """Executions not finished yet."""
        result = self._conn.execute(
            select(t.executions)
            .where(t.executions.c.state.in_(LIVE_STATES))
            .order_by(t.executions.c.id)
        )
        return [_execution(r) for r in result.mappings()]

    def running_for_plan(self, plan_id: str) -> ExecutionRecord | None:
        """The plan's running execution, if any."""
        result = self._conn.execute(
            select(t.executions).where(
                t.executions.c.plan_id == plan_id,
                t.executions.c.state.in_(LIVE_STATES),
            )
        )
        row = result.mappings().first()
        return _execution(row) if row else None

    def list(
        self,
        states: Sequence[ExecutionState],
        plan_id: str | None,
        before_id: str | None,
        limit: int,
        conditions: Sequence[Condition] = (),
    ) -> list[ExecutionRecord]:
        """Newest first, meeting the filter (plan and exchange by id)."""
        e = t.executions
        columns = {
            "state": e.c.state,
            "plan": e.c.plan_id,
            "exchange": e.c.exchange,
            "create_time": e.c.created_at,
            "end_time": e.c.ended_at,
        }
        query = select(e).where(*where(conditions, columns)).order_by(e.c.id.desc()).limit(limit)
        if states:
            query = query.where(t.executions.c.state.in_([s.value for s in states]))
        if plan_id is not None:
            query = query.where(t.executions.c.plan_id == plan_id)
        if before_id is not None:
            query = query.where(t.executions.c.id < before_id)
        result = self._conn.execute(query)
        return [_execution(r) for r in result.mappings()]


class OrderRepository:
    """Orders; every change is conditional on the state it was read in."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, order: OrderRecord) -> None:
        """Inserts one order (the client order id is unique)."""
        _ORDER_INSERT.execute(self._conn, _order_row(order))

    def get(self, order_id: str) -> OrderRecord | None:
        """One order."""
        result = self._conn.execute(_ORDER_BY_ID, {"b_id": order_id})
        row = result.mappings().first()
        return _order(row) if row else None

    def owner_of(self, client_order_id: str) -> str | None:
        """The id of the order with this client order id (only the id: it
        is asked before every send, and a whole row costs ten times more to
        read)."""
        row = _ORDER_ID_BY_CLIENT_ID.first(self._conn, {"b_cid": client_order_id})
        return str(row[0]) if row else None

    def replace(
        self, order: OrderRecord, expected: OrderState, previous: OrderRecord | None = None
    ) -> bool:
        """Writes ``order`` if it is still in state ``expected``. Given the
        record it was made from (``previous.changed(...)``, or
        ``dataclasses.replace`` of it), only the fields given a new value
        are written: binding all 24 columns was a fifth of the writer
        thread's time, and a field left alone keeps the very object it had,
        so nothing changed is missed."""
        if previous is None:
            row = _order_row(order)
            del row["id"]
            columns, values = _ORDER_UPDATE_ALL, row
        else:
            values = {
                _COLUMN_OF_FIELD.get(f, f): getattr(order, f)
                for f in _MUTABLE_FIELDS
                if getattr(order, f) is not getattr(previous, f)
            } or {"state": order.state}
            if "state" in values:
                values["state"] = order.state.value
            columns = tuple(values)
        changed = _order_update(columns).execute(
            self._conn, {**values, "b_id": order.id, "b_state": expected.value}
        )
        return changed == 1

    def for_execution(self, execution_id: str) -> list[OrderRecord]:
        """Every order of an execution, in sending order."""
        rows = _ORDER_FOR_EXECUTION.rows(self._conn, {"b_execution": execution_id})
        return [_order_of_row(r) for r in rows]

    def live_for_execution(self, execution_id: str) -> list[OrderRecord]:
        """The orders of an execution not final yet, in sending order."""
        rows = _LIVE_ORDERS.rows(self._conn, {"b_execution": execution_id})
        return [_order_of_row(r) for r in rows]

    def tallies(self, execution_id: str) -> list[OrderTally]:
        """Every order of an execution as its end counts it."""
        rows = _TALLIES.rows(self._conn, {"b_execution": execution_id})
        return [
            OrderTally(r[0], r[1], r[2], OrderState(r[3]), r[4], r[5], r[6], r[7]) for r in rows
        ]

    def unresolved(self) -> list[OrderRecord]:
        """Orders whose exchange state is not known to be final."""
        live = [s.value for s in OrderState if not s.terminal and s is not OrderState.PENDING]
        result = self._conn.execute(
            select(t.orders).where(t.orders.c.state.in_(live)).order_by(t.orders.c.id)
        )
        return [_order(r) for r in result.mappings()]

    def client_ids(self) -> set[str]:
        """Every client order id ever used."""
        result = self._conn.execute(select(t.orders.c.client_order_id))
        return {r[0] for r in result.all()}

    def page(
        self,
        execution_id: str | None,
        states: Sequence[OrderState],
        after_id: str | None,
        limit: int,
        conditions: Sequence[Condition] = (),
    ) -> list[OrderRecord]:
        """Orders oldest first, of one execution or all, meeting the filter."""
        o = t.orders
        columns = {
            "state": o.c.state,
            "side": o.c.side,
            "symbol": o.c.symbol,
            "create_time": o.c.created_at,
            "update_time": o.c.updated_at,
        }
        query = select(o).where(*where(conditions, columns)).order_by(o.c.id).limit(limit)
        if execution_id is not None:
            query = query.where(t.orders.c.execution_id == execution_id)
        if states:
            query = query.where(t.orders.c.state.in_([s.value for s in states]))
        if after_id is not None:
            query = query.where(t.orders.c.id > after_id)
        result = self._conn.execute(query)
        return [_order(r) for r in result.mappings()]
