"""The allocation plan and its lifecycle, as an explicit transition table."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from govex_server.domain.errors import etag_mismatch, failed_precondition
from govex_server.domain.principals import Principal, PrincipalKind


class PlanState(enum.Enum):
    """DRAFT -> REVIEWED -> APPROVED -> ACTIVE -> EXECUTED; CANCELLED from any
    non-terminal state."""

    DRAFT = "DRAFT"
    REVIEWED = "REVIEWED"
    APPROVED = "APPROVED"
    ACTIVE = "ACTIVE"
    EXECUTED = "EXECUTED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """True for EXECUTED and CANCELLED: nothing moves a plan out of them."""
        return self in (PlanState.EXECUTED, PlanState.CANCELLED)


class PlanAction(enum.Enum):
    """Everything that can be done to a plan."""

    UPDATE = "update"
    REVIEW = "review"
    APPROVE = "approve"
    REJECT = "reject"
    ACTIVATE = "activate"
    EXECUTE = "execute"
    COMPLETE = "complete"
    CANCEL = "cancel"
    SUPERSEDE = "supersede"


_S = PlanState
_A = PlanAction

# (state, action) -> next state. Anything not listed is refused with
# FAILED_PRECONDITION PLAN_STATE. EXECUTE starts an execution and leaves the
# plan ACTIVE; COMPLETE is the execution engine reporting every leg done.
TRANSITIONS: dict[tuple[PlanState, PlanAction], PlanState] = {
    (_S.DRAFT, _A.UPDATE): _S.DRAFT,
    (_S.DRAFT, _A.REVIEW): _S.REVIEWED,
    (_S.REVIEWED, _A.APPROVE): _S.APPROVED,
    (_S.REVIEWED, _A.REJECT): _S.CANCELLED,
    (_S.APPROVED, _A.ACTIVATE): _S.ACTIVE,
    (_S.ACTIVE, _A.EXECUTE): _S.ACTIVE,
    (_S.ACTIVE, _A.COMPLETE): _S.EXECUTED,
    (_S.ACTIVE, _A.SUPERSEDE): _S.CANCELLED,
    (_S.DRAFT, _A.CANCEL): _S.CANCELLED,
    (_S.REVIEWED, _A.CANCEL): _S.CANCELLED,
    (_S.APPROVED, _A.CANCEL): _S.CANCELLED,
    (_S.ACTIVE, _A.CANCEL): _S.CANCELLED,
}


def next_state(name: str, state: PlanState, action: PlanAction) -> PlanState:
    """The state after ``action``; FAILED_PRECONDITION PLAN_STATE otherwise."""
    target = TRANSITIONS.get((state, action))
    if target is None:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is state)
        raise failed_precondition(
            "PLAN_STATE",
            name,
            f"cannot {action.value} {name}: it is {state.value}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else " (terminal)"),
            state=state.value,
            action=action.value,
        )
    return target


@dataclass(frozen=True)
class Target:
    """One asset's target weight in percent. A hedge target's asset is a
    short position or hedge instrument: its legs are HEDGE operations."""

    asset: str
    weight_percent: float
    hedge: bool = False


@dataclass(frozen=True)
class Step:
    """Who took a lifecycle step, and when."""

    principal: str
    kind: PrincipalKind
    time: datetime
    comment: str = ""

    @staticmethod
    def by(principal: Principal, time: datetime, comment: str = "") -> Step:
        """A step taken by ``principal`` at ``time``."""
        return Step(principal.name, principal.kind, time, comment)


@dataclass(frozen=True)
class Plan:
    """A versioned allocation plan."""

    id: str
    state: PlanState
    targets: tuple[Target, ...]
    reason: str
    version: int
    proposed: Step
    proposed_under_mode: str
    create_time: datetime
    update_time: datetime
    reviewed: Step | None = None
    approved: Step | None = None
    activated: Step | None = None
    rejected: Step | None = None
    cancelled: Step | None = None
    execute_time: datetime | None = None
    cooldown_overridden: bool = False

    @property
    def name(self) -> str:
        """The resource name, ``plans/{id}``."""
        return f"plans/{self.id}"

    @property
    def etag(self) -> str:
        """Opaque concurrency token: a hash of id and version, never a clock."""
        return plan_etag(self.id, self.version)

    def moved(self, action: PlanAction, at: datetime, **changes: Any) -> Plan:
        """A copy after ``action``: next state, version + 1, update time."""
        state = next_state(self.name, self.state, action)
        return replace(self, state=state, version=self.version + 1, update_time=at, **changes)


def plan_etag(plan_id: str, version: int) -> str:
    """The etag of version ``version`` of plan ``plan_id``."""
    digest = hashlib.sha256(f"plan:{plan_id}:{version}".encode()).hexdigest()
    return f'W/"{digest[:24]}"'


def combined_etag(*parts: str) -> str:
    """A weak etag over several parts (of a read model, not one resource)."""
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f'W/"{digest[:24]}"'


def check_etag(name: str, given: str, current: str) -> None:
    """ABORTED ETAG_MISMATCH unless ``given`` is the current etag."""
    if given != current:
        raise etag_mismatch(name, current)


def require_transition(plan: Plan, action: PlanAction) -> None:
    """Raises the PLAN_STATE refusal when ``action`` is not allowed now."""
    next_state(plan.name, plan.state, action)
