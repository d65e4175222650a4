"""Which plan buttons the signed-in principal may press now, and why not.

Pure: it asks the same rules the services enforce (the RPC's roles, the
state machine, four eyes and the mode, the cooldown), so a button is
disabled exactly when the service would refuse the click, with the
service's own words."""

from __future__ import annotations

from dataclasses import dataclass

from govex_server.api.auth import authorize
from govex_server.domain.errors import GovexError
from govex_server.domain.governance import (
    CooldownStatus,
    GovernanceMode,
    check_cancel,
    check_cooldown,
    check_step,
)
from govex_server.domain.plans import Plan, PlanAction, PlanState, require_transition
from govex_server.domain.principals import Principal
from govex_server.domain.rpcs import EXECUTION, GOVERNANCE, RPCS
from govex_server.services.planning import PlanValidation

# The plan steps the console offers, in the order of the lifecycle.
STEPS = (
    ("review", "Review", "ReviewPlan", PlanAction.REVIEW),
    ("approve", "Approve", "ApprovePlan", PlanAction.APPROVE),
    ("reject", "Reject", "RejectPlan", PlanAction.REJECT),
    ("activate", "Activate", "ActivatePlan", PlanAction.ACTIVATE),
    ("cancel", "Cancel", "CancelPlan", PlanAction.CANCEL),
)
RPC_OF = {step: rpc for step, _, rpc, _ in STEPS}
ACTION_OF = {step: action for step, _, _, action in STEPS}


@dataclass(frozen=True)
class Button:
    """One action on a plan: enabled, or disabled with the reason."""

    step: str
    label: str
    why_not: str = ""

    @property
    def enabled(self) -> bool:
        return not self.why_not


def may_call(principal: Principal, rpc: str) -> str:
    """Empty when ``principal`` holds a role of ``rpc``, else why not."""
    spec = RPCS.get(f"{GOVERNANCE}/{rpc}") or RPCS[f"{EXECUTION}/{rpc}"]
    try:
        authorize(principal, rpc, spec)
    except GovexError as refusal:
        return refusal.message
    return ""


def plan_buttons(
    plan: Plan, principal: Principal, mode: GovernanceMode, cooldown: CooldownStatus
) -> list[Button]:
    """The buttons a principal with no role for a step does not see at all;
    the others, enabled or with the reason the service would give."""
    buttons = []
    for step, label, rpc, action in STEPS:
        if may_call(principal, rpc):
            continue  # a viewer sees no action buttons
        buttons.append(Button(step, label, _why_not(plan, principal, mode, cooldown, action)))
    return buttons


def _why_not(
    plan: Plan,
    principal: Principal,
    mode: GovernanceMode,
    cooldown: CooldownStatus,
    action: PlanAction,
) -> str:
    try:
        require_transition(plan, action)
        if action is PlanAction.CANCEL:
            check_cancel(mode, plan, principal)
        else:
            # Bound violations (FULL_AI, ai principals) need the store: the
            # service checks them on the click.
            check_step(mode, plan, principal, action)
        if action is PlanAction.ACTIVATE:
            check_cooldown(cooldown, principal, False, "")
    except GovexError as refusal:
        if refusal.reason == "SELF_APPROVAL":
            return "you proposed this plan: someone else must approve it"
        return refusal.message
    return ""


def execute_button(
    plan: Plan, principal: Principal, validation: PlanValidation | None, unvalidated: str
) -> Button | None:
    """ExecutePlan's button: none without its role; disabled with the reason
    ExecutePlan would give (not ACTIVE, or what ValidatePlan says blocks it)."""
    if may_call(principal, "ExecutePlan"):
        return None
    why = ""
    if plan.state is not PlanState.ACTIVE:
        why = f"only an ACTIVE plan is executed; this one is {plan.state.value}"
    elif validation is None:
        why = unvalidated or "cannot tell whether it is executable now"
    elif not validation.executable:
        why = "blocked: " + "; ".join(validation.blocking_reasons)
    return Button("execute", "Execute", why)
