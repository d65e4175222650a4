"""Who may do what: governance modes, four eyes and the publication cooldown."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from govex_server.domain.errors import (
    Category,
    GovexError,
    failed_precondition,
    invalid_field,
    permission_denied,
)
from govex_server.domain.plans import Plan, PlanAction
from govex_server.domain.principals import Principal, PrincipalKind, Role

MIN_COOLDOWN_HOURS = 1.0
MAX_COOLDOWN_HOURS = 168.0


class GovernanceMode(enum.Enum):
    """Who may decide (DESIGN.md §3)."""

    MANUAL = "MANUAL"
    AI_ASSISTED = "AI_ASSISTED"
    FULL_AI = "FULL_AI"


@dataclass(frozen=True)
class ModeSetting:
    """The governance mode: a versioned singleton."""

    mode: GovernanceMode
    version: int
    update_time: datetime | None
    updated_by: str

    @property
    def etag(self) -> str:
        """Opaque token derived from the version."""
        digest = hashlib.sha256(f"mode:{self.version}".encode()).hexdigest()
        return f'W/"{digest[:24]}"'


# The steps of a plan that the mode governs. Proposing is governed apart;
# cancelling is always a safe direction and is not a governed step.
GOVERNED_STEPS = (
    PlanAction.UPDATE,
    PlanAction.REVIEW,
    PlanAction.APPROVE,
    PlanAction.REJECT,
    PlanAction.ACTIVATE,
    PlanAction.EXECUTE,
)


@dataclass(frozen=True)
class BoundViolation:
    """One full_ai bound that does not hold now (for example stale signals)."""

    bound: str
    description: str


def check_propose(mode: GovernanceMode, principal: Principal) -> None:
    """In manual mode only humans propose."""
    if mode is GovernanceMode.MANUAL and not principal.is_human:
        raise failed_precondition(
            "MODE_FORBIDS",
            "governance/mode",
            f"in MANUAL mode only humans propose plans; {principal.name} is an ai principal",
            mode=mode.value,
        )


def check_cancel(mode: GovernanceMode, plan: Plan, principal: Principal) -> None:
    """Who may cancel ``plan``. Humans: approvers, operators and admins any
    plan, others their own. An ai principal: only plans it proposed, and in
    MANUAL mode none (the mode that forbids it to reject forbids it to
    cancel: cancelling a human's ACTIVE plan is a rejection after the fact)."""
    if not principal.is_human:
        if mode is GovernanceMode.MANUAL:
            raise failed_precondition(
                "MODE_FORBIDS",
                plan.name,
                f"in MANUAL mode only humans cancel plans; {principal.name} is an ai principal",
                mode=mode.value,
            )
        if plan.proposed.principal != principal.name:
            raise permission_denied(
                "NOT_PROPOSER",
                f"an ai principal cancels only its own plans; {plan.name} was proposed by "
                f"{plan.proposed.principal}",
                resource=plan.name,
            )
        return
    privileged = principal.has_any((Role.APPROVER, Role.OPERATOR, Role.ADMIN))
    if not privileged and plan.proposed.principal != principal.name:
        raise permission_denied(
            "NOT_PROPOSER",
            f"{principal.name} may cancel only its own plans; {plan.name} was proposed "
            f"by {plan.proposed.principal}",
            resource=plan.name,
        )


def check_step(
    mode: GovernanceMode,
    plan: Plan,
    principal: Principal,
    action: PlanAction,
    bound_violations: Sequence[BoundViolation] = (),
) -> None:
    """Four eyes and mode rules for one governed step of ``plan``.

    - A human never approves a plan that same human proposed (SELF_APPROVAL).
    - In MANUAL and AI_ASSISTED modes only humans take governed steps.
    - In FULL_AI an ai principal may take every step on its own plans, and
      only while every bound holds; otherwise MODE_FORBIDS names the bound.
    """
    if action not in GOVERNED_STEPS:
        raise ValueError(f"{action} is not a governed step")
    if principal.is_human:
        if (
            action is PlanAction.APPROVE
            and plan.proposed.kind is PrincipalKind.HUMAN
            and plan.proposed.principal == principal.name
        ):
            raise permission_denied(
                "SELF_APPROVAL",
                f"{principal.name} proposed {plan.name} and may not approve it (four eyes)",
                resource=plan.name,
            )
        return
    if mode is not GovernanceMode.FULL_AI:
        raise failed_precondition(
            "MODE_FORBIDS",
            plan.name,
            f"in {mode.value} mode only humans {action.value} plans; "
            f"{principal.name} is an ai principal",
            mode=mode.value,
        )
    if plan.proposed.principal != principal.name:
        raise failed_precondition(
            "MODE_FORBIDS",
            plan.name,
            f"in FULL_AI mode an ai principal advances only its own plans; "
            f"{plan.name} was proposed by {plan.proposed.principal}",
            mode=mode.value,
        )
    if bound_violations:
        first = bound_violations[0]
        raise failed_precondition(
            "MODE_FORBIDS",
            plan.name,
            f"FULL_AI bound '{first.bound}' does not hold: {first.description}; "
            "the plan waits for a human",
            mode=mode.value,
            bound=first.bound,
            bounds=",".join(v.bound for v in bound_violations),
        )


@dataclass(frozen=True)
class CooldownStatus:
    """When the next plan may be published."""

    cooldown: timedelta
    last_activation_time: datetime | None
    last_activated_plan: str | None
    now: datetime

    @property
    def next_allowed_time(self) -> datetime:
        """The earliest activation time without an override."""
        if self.last_activation_time is None:
            return self.now
        return max(self.now, self.last_activation_time + self.cooldown)

    @property
    def remaining(self) -> timedelta:
        """Time left until publishing is allowed; zero when it is."""
        return self.next_allowed_time - self.now

    @property
    def publishing_allowed(self) -> bool:
        """True when an activation needs no override now."""
        return self.remaining <= timedelta(0)


def cooldown_hours_valid(hours: float) -> bool:
    """The configurable range of the cooldown, 1 to 168 hours."""
    return MIN_COOLDOWN_HOURS <= hours <= MAX_COOLDOWN_HOURS


def check_cooldown(
    status: CooldownStatus, principal: Principal, override: bool, override_reason: str
) -> None:
    """Refuses an activation inside the cooldown unless an admin overrides it
    with a reason. The override itself is validated even outside the cooldown
    so that a non-admin cannot probe with it."""
    if override:
        if Role.ADMIN not in principal.roles:
            raise permission_denied(
                "OVERRIDE_FORBIDDEN",
                f"only an admin may override the cooldown; {principal.name} is not one",
            )
        if not override_reason.strip():
            raise invalid_field("override_reason", "required with override_cooldown")
        return
    if not status.publishing_allowed:
        remaining = status.remaining
        raise GovexError(
            Category.FAILED_PRECONDITION,
            "COOLDOWN",
            f"publication cooldown: the last plan ({status.last_activated_plan}) was "
            f"activated at {status.last_activation_time:%Y-%m-%dT%H:%M:%SZ}; the next "
            f"activation is allowed at {status.next_allowed_time:%Y-%m-%dT%H:%M:%SZ}",
            retry_after_seconds=remaining.total_seconds(),
            metadata={
                "nextAllowedTime": status.next_allowed_time.isoformat(),
                "remainingSeconds": str(int(remaining.total_seconds())),
            },
        )
