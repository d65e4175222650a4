"""Events: every state change, recorded in the transaction that made it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from govex_server.domain.execution.records import (
    ExecutionRecord,
    ExecutionState,
    OrderRecord,
    Tallied,
)
from govex_server.domain.freezes import Freeze
from govex_server.domain.governance import ModeSetting
from govex_server.domain.phase import PhaseState
from govex_server.domain.plans import Plan
from govex_server.domain.policy import Freshness, Policy
from govex_server.domain.signals import SignalSet


class EventKind(enum.Enum):
    """What happened (the names match govex.governance.v1.EventKind)."""

    PLAN_PROPOSED = "PLAN_PROPOSED"
    PLAN_UPDATED = "PLAN_UPDATED"
    PLAN_REVIEWED = "PLAN_REVIEWED"
    PLAN_APPROVED = "PLAN_APPROVED"
    PLAN_REJECTED = "PLAN_REJECTED"
    PLAN_ACTIVATED = "PLAN_ACTIVATED"
    PLAN_CANCELLED = "PLAN_CANCELLED"
    PLAN_EXECUTED = "PLAN_EXECUTED"
    MODE_CHANGED = "MODE_CHANGED"
    FREEZE_CREATED = "FREEZE_CREATED"
    FREEZE_LIFTED = "FREEZE_LIFTED"
    FREEZE_EXPIRED = "FREEZE_EXPIRED"
    POLICY_CHANGED = "POLICY_CHANGED"
    SIGNALS_FRESHNESS_CHANGED = "SIGNALS_FRESHNESS_CHANGED"
    PHASE_CHANGED = "PHASE_CHANGED"
    SIGNALS_PUBLISHED = "SIGNALS_PUBLISHED"
    # Order changes (WatchOrders), kept out of the governance streams.
    ORDER_UPDATED = "ORDER_UPDATED"
    # Execution changes (started, CANCELLING, ended), on WatchOrders too.
    EXECUTION_UPDATED = "EXECUTION_UPDATED"


EXECUTION_KINDS = frozenset({EventKind.ORDER_UPDATED, EventKind.EXECUTION_UPDATED})
GOVERNANCE_KINDS = frozenset(k for k in EventKind if k not in EXECUTION_KINDS)
FREEZE_KINDS = frozenset(
    {EventKind.FREEZE_CREATED, EventKind.FREEZE_LIFTED, EventKind.FREEZE_EXPIRED}
)


@dataclass(frozen=True)
class OrderUpdate:
    """An order after a change, with its execution's state."""

    order: OrderRecord
    execution_state: ExecutionState
    # The exchange account the order is sent to (for the metrics and logs).
    account: str = ""


class ExecutionChange(enum.Enum):
    """What happened to an execution."""

    STARTED = "STARTED"
    STATE_CHANGED = "STATE_CHANGED"
    ENDED = "ENDED"
    # Another replica took it over (its owner died or stopped renewing).
    OWNER_CHANGED = "OWNER_CHANGED"


@dataclass(frozen=True)
class ExecutionUpdate:
    """An execution after a change, with its orders (for their counts)."""

    execution: ExecutionRecord
    orders: tuple[Tallied, ...]
    change: ExecutionChange


Payload = (
    Plan
    | Freeze
    | ModeSetting
    | Policy
    | Freshness
    | PhaseState
    | SignalSet
    | OrderUpdate
    | ExecutionUpdate
)


@dataclass(frozen=True)
class DomainEvent:
    """A change to record. The sequence is assigned by the store."""

    kind: EventKind
    time: datetime
    actor: str
    resource: str
    payload: Payload
