"""The full_ai bounds: what must hold before an ai principal advances a plan
on its own (DESIGN.md §3: no freeze, policy mode not FREEZE, fresh signals,
turnover within the daily cap)."""

from __future__ import annotations

from typing import Protocol

from govex_server.domain.governance import BoundViolation
from govex_server.domain.plans import Plan
from govex_server.store.database import UnitOfWork


class FullAiBounds(Protocol):
    """Checks the bounds inside the transaction of the step."""

    async def violations(self, uow: UnitOfWork, plan: Plan) -> list[BoundViolation]:
        """Every bound that does not hold for ``plan`` now; empty when all hold."""
        ...


class SignalsRequiredBounds:
    """The bounds as far as this server can check them today.

    No signal ingestion exists yet (PublishSignals answers UNIMPLEMENTED), so
    the "fresh signals" bound can never hold and every full_ai step by an ai
    principal is refused with MODE_FORBIDS. Failing closed is the point: an
    unverifiable bound is a bound that does not hold.
    """

    async def violations(self, uow: UnitOfWork, plan: Plan) -> list[BoundViolation]:
        """Always the signals bound, until signals can be published."""
        return [
            BoundViolation(
                "signals_fresh",
                "no signal set has been published, so the signals cannot be FRESH",
            )
        ]
