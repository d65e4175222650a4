"""Executions and orders as stored, and how an execution ends."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from govex_server.domain import money
from govex_server.domain.execution.legs import Leg
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.policy import Policy


class ExecutionState(enum.Enum):
    """Where an execution stands."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SIMULATED = "SIMULATED"
    # A cancel was accepted; open orders are being cancelled at the exchange.
    CANCELLING = "CANCELLING"

    @property
    def terminal(self) -> bool:
        """Nothing more happens to it."""
        return self not in LIVE


# The states of an execution that still has a runner (and holds its plan).
LIVE = frozenset({ExecutionState.PENDING, ExecutionState.RUNNING, ExecutionState.CANCELLING})


class Strategy(enum.Enum):
    """How orders are sent."""

    SEQUENTIAL = "SEQUENTIAL"
    PARALLEL = "PARALLEL"


@dataclass(frozen=True)
class ExecutionRecord:
    """One execution of a plan."""

    id: str
    plan_id: str
    exchange: str
    state: ExecutionState
    strategy: Strategy
    max_parallel: int
    safety_level: str
    actor: str
    actor_kind: str
    # The legs and the policy it started with (typed; stored as JSON).
    legs: tuple[Leg, ...]
    policy: Policy
    portfolio_value: Decimal
    create_time: datetime
    version: int = 1
    state_reason: str = ""
    end_time: datetime | None = None
    dry_run: bool = False

    @property
    def name(self) -> str:
        """``executions/{id}``."""
        return f"executions/{self.id}"


@dataclass(frozen=True)
class OrderRecord:
    """One order, committed before the exchange hears of it."""

    id: str
    execution_id: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    reference_price: Decimal
    leg_index: int
    slice_index: int
    attempt: int
    operation: str
    day: int
    scheduled_time: datetime
    state: OrderState
    create_time: datetime
    update_time: datetime
    state_reason: str = ""
    exchange_order_id: str = ""
    filled: Decimal = money.ZERO
    average_price: Decimal = money.ZERO
    fee: Decimal = money.ZERO
    safety: dict[str, Any] = field(default_factory=dict)
    # When it went to the exchange (SUBMITTED); None before.
    send_time: datetime | None = None

    @property
    def name(self) -> str:
        """``executions/{execution}/orders/{id}``."""
        return f"executions/{self.execution_id}/orders/{self.id}"

    @classmethod
    def of_values(cls, values: Sequence[Any]) -> OrderRecord:
        """The record of every field's value, in field order, as
        ``OrderRecord(*values)`` makes it, at a third of its cost (a
        runner's read builds a thousand records and more)."""
        made = object.__new__(cls)
        made.__dict__.update(zip(_FIELD_ORDER, values, strict=True))
        return made

    def changed(self, **changes: Any) -> OrderRecord:
        """This order with ``changes``, as ``dataclasses.replace`` makes it
        (unchanged fields shared, an unknown field refused), at a fifth of
        its cost: every order's every move makes one, inside the one writer
        (replace runs the 24-field frozen __init__ again, some 10 us)."""
        unknown = changes.keys() - _ORDER_FIELDS
        if unknown:
            raise TypeError(f"OrderRecord has no field {', '.join(sorted(unknown))}")
        made = object.__new__(OrderRecord)
        made.__dict__.update(self.__dict__)
        made.__dict__.update(changes)
        return made


_FIELD_ORDER = tuple(f.name for f in fields(OrderRecord))
_ORDER_FIELDS = frozenset(_FIELD_ORDER)


class Tallied(Protocol):
    """What an execution's end (``outcome``) and its counts (an execution's
    order counts and filled notional) need of each order: an OrderRecord,
    or an OrderTally read without the rest of its row."""

    @property
    def leg_index(self) -> int: ...
    @property
    def slice_index(self) -> int: ...
    @property
    def attempt(self) -> int: ...
    @property
    def state(self) -> OrderState: ...
    @property
    def state_reason(self) -> str: ...
    @property
    def filled(self) -> Decimal: ...
    @property
    def average_price(self) -> Decimal: ...
    @property
    def price(self) -> Decimal: ...


@dataclass(frozen=True)
class OrderTally:
    """An order as its execution's end counts it. A runner ends an
    execution from these: its last turn no longer reads every order whole
    (a thousand rows of 24 columns, some 20 ms) to find that none is left."""

    leg_index: int
    slice_index: int
    attempt: int
    state: OrderState
    state_reason: str
    filled: Decimal
    average_price: Decimal
    price: Decimal


def outcome(orders: Sequence[Tallied], cancelled_by: str) -> tuple[ExecutionState, str]:
    """How an execution whose orders are all terminal ended: SUCCEEDED only
    when every order filled; CANCELLED when an operator or a FULL_FREEZE
    stopped it; PARTIALLY_FILLED when something filled; else FAILED."""
    if cancelled_by:
        return ExecutionState.CANCELLED, cancelled_by
    if not orders:
        # Every leg was skipped by policy (no-trade zone, minimum trade).
        return ExecutionState.SUCCEEDED, "nothing to trade: every leg skipped by policy"
    every = orders
    # A lost send retried under a new attempt counts by its last attempt.
    latest: dict[tuple[int, int], Tallied] = {}
    for o in orders:
        key = (o.leg_index, o.slice_index)
        if key not in latest or o.attempt > latest[key].attempt:
            latest[key] = o
    orders = list(latest.values())
    filled = [o for o in orders if o.state is OrderState.FILLED]
    if orders and len(filled) == len(orders):
        return ExecutionState.SUCCEEDED, "every order filled"
    # A slice re-sent after resting may have traded on an earlier attempt.
    traded = [o for o in every if o.filled > 0]
    failed = sorted(
        {f"{o.state.value}: {o.state_reason}" for o in orders if o.state is not OrderState.FILLED}
    )
    if traded:
        return ExecutionState.PARTIALLY_FILLED, "; ".join(failed)[:1000]
    return ExecutionState.FAILED, "; ".join(failed)[:1000]
