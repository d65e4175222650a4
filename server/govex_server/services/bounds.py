"""The full_ai bounds: what must hold before an ai principal advances a plan
on its own (DESIGN.md §3): no freeze, policy mode not FREEZE, FRESH signals,
and the plan's turnover within the policy's daily cap."""

from __future__ import annotations

from typing import Protocol

from govex_server.domain.allocation import turnover_percent
from govex_server.domain.clock import Clock
from govex_server.domain.governance import BoundViolation
from govex_server.domain.plans import Plan
from govex_server.domain.policy import Freshness, PolicyMode
from govex_server.services.policy import PolicyService
from govex_server.store.database import UnitOfWork


class FullAiBounds(Protocol):
    """Checks the bounds inside the transaction of the step."""

    def violations(self, uow: UnitOfWork, plan: Plan) -> list[BoundViolation]:
        """Every bound that does not hold for ``plan`` now; empty when all hold."""
        ...


class PolicyBounds:
    """The bounds, read in the step's own transaction."""

    def __init__(self, policy: PolicyService, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock

    def violations(self, uow: UnitOfWork, plan: Plan) -> list[BoundViolation]:
        """Every failing bound, in a fixed order."""
        now = self._clock.now()
        out = []
        active_freezes = [f for f in uow.freezes.unended() if f.active_at(now)]
        if active_freezes:
            names = ", ".join(f"{f.name} ({f.type.value})" for f in active_freezes)
            out.append(BoundViolation("no_freeze", f"active freezes: {names}"))
        view = self._policy.view_in(uow)
        if view.policy.mode is PolicyMode.FREEZE:
            out.append(BoundViolation("policy_not_freeze", "the policy mode is FREEZE"))
        fresh = view.freshness is Freshness.FRESH and self._policy.young_enough(view)
        if not fresh:
            age = "" if view.age is None else f", age {int(view.age.total_seconds() // 60)} min"
            out.append(
                BoundViolation(
                    "signals_fresh", f"signals are {view.freshness.value}{age}, not FRESH"
                )
            )
        # Turnover against the active plan's weights (no portfolio is known
        # here yet); with no active plan everything is bought: 100%.
        active = uow.plans.active()
        current = active.targets if active is not None and active.id != plan.id else ()
        turnover = turnover_percent(current, plan.targets)
        cap = view.policy.cap_daily * 100
        if turnover > cap + 1e-9:
            out.append(
                BoundViolation(
                    "turnover_within_cap",
                    f"turnover {turnover:.2f}% exceeds the daily cap {cap:.2f}%",
                )
            )
        return out
