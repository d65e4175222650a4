"""ActivatePlan: APPROVED -> ACTIVE under the cooldown, superseding the plan
that was ACTIVE, in one transaction that locks the mode row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from govex_server.domain.errors import failed_precondition
from govex_server.domain.events import EventKind
from govex_server.domain.governance import check_cooldown
from govex_server.domain.ids import parse_name
from govex_server.domain.plans import Plan, PlanAction, Step, require_transition
from govex_server.domain.principals import Principal
from govex_server.services.governance_state import cooldown_in
from govex_server.services.plan_changes import PlanChanges, checked_etag, checked_text
from govex_server.services.recorder import Call
from govex_server.store.database import UnitOfWork


@dataclass(frozen=True)
class Activation:
    """The result of ActivatePlan."""

    plan: Plan
    superseded: Plan | None


class Activating(PlanChanges):
    """The activation use case of the governance service."""

    # The time between two publications; GovernanceService sets it.
    _cooldown: timedelta

    async def activate(
        self,
        actor: Principal,
        name: str,
        etag: str,
        override_cooldown: bool,
        override_reason: str,
        call: Call | None = None,
    ) -> Activation:
        """APPROVED -> ACTIVE (publishing). Refused inside the cooldown unless an
        admin overrides it with a reason; the previously ACTIVE plan is
        cancelled as superseded in the same transaction."""
        plan_id = parse_name(name, "plans")
        checked_etag(etag)
        checked_text(override_reason, "override_reason", required=override_cooldown)

        def unit(uow: UnitOfWork) -> Activation:
            # Locking the mode row serialises activations across replicas, so
            # the cooldown and the supersede read below cannot race.
            mode = uow.modes.get(for_update=True)
            plan = self._load(uow, plan_id, etag)
            self._check_governed(uow, mode, plan, actor, PlanAction.ACTIVATE)
            require_transition(plan, PlanAction.ACTIVATE)
            now = self._clock.now()
            status = cooldown_in(uow, self._cooldown, now)
            check_cooldown(status, actor, override_cooldown, override_reason)
            overridden = override_cooldown and not status.publishing_allowed
            superseded: Plan | None = None
            old = uow.plans.active()
            running = uow.executions.running_for_plan(old.id) if old is not None else None
            if old is not None and running is not None:
                # Superseding it would leave the execution trading for a
                # CANCELLED plan: the desk cancels (or lets finish) it first.
                raise failed_precondition(
                    "EXECUTION_RUNNING",
                    old.name,
                    f"{old.name} has a running execution (executions/{running.id}); cancel it "
                    f"or let it finish before activating {plan.name}",
                    execution=f"executions/{running.id}",
                )
            if old is not None:
                superseded = old.moved(
                    PlanAction.SUPERSEDE,
                    now,
                    cancelled=Step.by(actor, now, f"superseded by {plan.name}"),
                )
                self._replace(uow, superseded, old)
                self._record(
                    uow,
                    actor,
                    mode,
                    "ActivatePlan",
                    EventKind.PLAN_CANCELLED,
                    superseded,
                    old.name,
                    old.etag,
                    superseded.etag,
                    f"superseded by {plan.name}",
                )
            comment = override_reason if overridden else ""
            activated = plan.moved(
                PlanAction.ACTIVATE,
                now,
                activated=Step.by(actor, now, comment),
                cooldown_overridden=overridden,
            )
            self._replace(uow, activated, plan)
            details: dict[str, Any] = {}
            if overridden:
                details = {
                    "cooldown_override": True,
                    "cooldown_remaining_seconds": int(status.remaining.total_seconds()),
                }
            result = Activation(activated, superseded)
            self._record(
                uow,
                actor,
                mode,
                "ActivatePlan",
                EventKind.PLAN_ACTIVATED,
                activated,
                plan.name,
                plan.etag,
                activated.etag,
                f"cooldown override: {override_reason}" if overridden else "",
                details,
                call=call,
                result=result,
            )
            return result

        return await self._store.write(unit)
