"""Governance use cases: plans through their lifecycle under the mode, the
four-eyes rules and the cooldown; the mode itself. Each use case is one
transaction that also writes its audit record (and idempotency record)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from govex_server.domain import filters, list_filters
from govex_server.domain.clock import Clock
from govex_server.domain.errors import (
    GovexError,
    etag_mismatch,
    invalid_field,
    not_found,
    permission_denied,
)
from govex_server.domain.events import EventKind
from govex_server.domain.governance import (
    CooldownStatus,
    GovernanceMode,
    ModeSetting,
    check_cancel,
    check_propose,
)
from govex_server.domain.ids import UlidFactory, parse_name
from govex_server.domain.paging import filter_key, next_token, parse_page
from govex_server.domain.plans import (
    Plan,
    PlanAction,
    PlanState,
    Step,
    Target,
    check_etag,
    require_transition,
)
from govex_server.domain.principals import Principal
from govex_server.domain.targets import validate_targets
from govex_server.services.activation import Activating
from govex_server.services.bounds import FullAiBounds
from govex_server.services.governance_state import (
    GovernanceSnapshot,
    GovernanceState,
)
from govex_server.services.plan_changes import checked_etag, checked_text
from govex_server.services.recorder import Call, Recorder
from govex_server.store.database import Store, UnitOfWork


@dataclass(frozen=True)
class AutoAdvance:
    """How far auto_advance took a plan, and why it stopped there."""

    plan: Plan
    steps: list[str]
    stop_reason: str


@dataclass(frozen=True)
class PlanPage:
    """One page of ListPlans."""

    plans: list[Plan]
    next_page_token: str


class PlanExecutions(Protocol):
    """What CancelPlan needs of the execution engine."""

    def cancel_for_plan_in(
        self, uow: UnitOfWork, plan_id: str, actor: Principal, reason: str
    ) -> str | None:
        """Cancels the plan's running execution in ``uow``; its id."""

    def stop_soon(self, execution_id: str) -> None:
        """After the commit: the execution's runner stops it."""


class GovernanceService(Activating):
    """The plan lifecycle and the governance mode."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        cooldown: timedelta,
        bounds: FullAiBounds,
        ids: UlidFactory | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__(store, clock, bounds, recorder or Recorder())
        self._cooldown = cooldown
        self._ids = ids or UlidFactory()
        self.state = GovernanceState(store, clock, cooldown)
        # Invalidated by the event listener of app.py when something changes.
        self.read_cache = self.state.read_cache
        self._executions: PlanExecutions | None = None

    # ------------------------------------------------------------------ reads

    async def get_plan(self, name: str) -> Plan:
        """One plan by resource name."""
        plan_id = parse_name(name, "plans")
        plan = await self._store.read(lambda uow: uow.plans.get(plan_id))
        if plan is None:
            raise not_found("govex.io/Plan", name)
        return plan

    async def list_plans(
        self, states: Sequence[PlanState], page_size: int, page_token: str, filter_text: str = ""
    ) -> PlanPage:
        """Plans newest first, optionally only some states, meeting the
        AIP-160 ``filter_text``."""
        conditions = filters.parse(filter_text, list_filters.PLANS)
        key = filter_key([*sorted(s.value for s in states), *filters.key(conditions)])
        page = parse_page(page_size, page_token, key)
        plans = await self._store.read(
            lambda uow: uow.plans.list(states, page.after_id, page.size + 1, conditions)
        )
        more = len(plans) > page.size
        plans = plans[: page.size]
        return PlanPage(plans, next_token(page, plans[-1].id if plans else None, more))

    async def cooldown_status(self) -> CooldownStatus:
        """When the next plan may be published."""
        return await self.state.cooldown_status()

    async def snapshot(self) -> GovernanceSnapshot:
        """Mode, active plan, counts and cooldown, read together."""
        return await self.state.snapshot()

    async def mode(self) -> ModeSetting:
        """The governance mode."""
        return await self.state.mode()

    # -------------------------------------------------------------- mutations

    async def propose(
        self,
        actor: Principal,
        targets: Sequence[Target],
        reason: str,
        call: Call | None = None,
    ) -> Plan:
        """A new DRAFT plan."""
        checked = validate_targets(targets)
        checked_text(reason, "reason")

        def unit(uow: UnitOfWork) -> Plan:
            mode = uow.modes.get()
            check_propose(mode.mode, actor)
            now = self._clock.now()
            plan = Plan(
                id=self._ids.new(now),
                state=PlanState.DRAFT,
                targets=checked,
                reason=reason,
                version=1,
                proposed=Step.by(actor, now, reason),
                proposed_under_mode=mode.mode.value,
                create_time=now,
                update_time=now,
            )
            uow.plans.add(plan)
            self._record(
                uow,
                actor,
                mode,
                "ProposePlan",
                EventKind.PLAN_PROPOSED,
                plan,
                plan.name,
                None,
                plan.etag,
                reason,
                call=call,
                result=plan,
            )
            return plan

        return await self._store.write(unit)

    async def update(
        self,
        actor: Principal,
        name: str,
        etag: str,
        targets: Sequence[Target] | None,
        reason: str | None,
        call: Call | None = None,
    ) -> Plan:
        """Changes a DRAFT plan's targets and/or reason (None: unchanged), as
        UpdatePlan's update mask named them; only its proposer may."""
        plan_id = parse_name(name, "plans", "plan.name")
        checked_etag(etag, "plan.etag")
        if targets is None and reason is None:
            raise invalid_field("update_mask", "names no field to update: targets, reason")
        checked = None if targets is None else validate_targets(targets, "plan.targets")
        if reason is not None:
            checked_text(reason, "plan.reason")

        def mutate(plan: Plan, mode: ModeSetting, now: datetime) -> Plan:
            if plan.proposed.principal != actor.name:
                raise permission_denied(
                    "NOT_PROPOSER",
                    f"only {plan.proposed.principal}, who proposed {plan.name}, may edit it",
                    resource=plan.name,
                )
            check_propose(mode.mode, actor)
            changes: dict[str, Any] = {}
            if checked is not None:
                changes["targets"] = checked
            if reason is not None:
                changes["reason"] = reason
            return plan.moved(PlanAction.UPDATE, now, **changes)

        return await self._transition(
            actor, "UpdatePlan", plan_id, etag, PlanAction.UPDATE, reason or "", call, mutate
        )

    async def review(
        self, actor: Principal, name: str, etag: str, comment: str, call: Call | None = None
    ) -> Plan:
        """DRAFT -> REVIEWED."""
        return await self._step(actor, "ReviewPlan", name, etag, PlanAction.REVIEW, comment, call)

    async def approve(
        self, actor: Principal, name: str, etag: str, comment: str, call: Call | None = None
    ) -> Plan:
        """REVIEWED -> APPROVED, never by the human who proposed it."""
        return await self._step(actor, "ApprovePlan", name, etag, PlanAction.APPROVE, comment, call)

    async def reject(
        self, actor: Principal, name: str, etag: str, reason: str, call: Call | None = None
    ) -> Plan:
        """REVIEWED -> CANCELLED, recording who rejected it and why."""
        checked_text(reason, "reason", required=True)
        return await self._step(actor, "RejectPlan", name, etag, PlanAction.REJECT, reason, call)

    async def cancel(
        self, actor: Principal, name: str, etag: str, reason: str, call: Call | None = None
    ) -> Plan:
        """Any non-terminal state -> CANCELLED. Approvers, operators and admins
        may cancel any plan; a proposer only its own."""
        plan_id = parse_name(name, "plans")
        checked_etag(etag)
        checked_text(reason, "reason")

        stopped: list[str] = []

        def mutate(plan: Plan, mode: ModeSetting, now: datetime) -> Plan:
            check_cancel(mode.mode, plan, actor)
            return plan.moved(PlanAction.CANCEL, now, cancelled=Step.by(actor, now, reason))

        def also(uow: UnitOfWork, plan: Plan) -> None:
            # A cancelled plan's running execution is cancelled with it, in
            # the same transaction: it must not trade on for a dead plan.
            stopped.clear()
            if self._executions is not None:
                eid = self._executions.cancel_for_plan_in(uow, plan.id, actor, reason)
                stopped.extend([eid] if eid else [])

        plan = await self._transition(
            actor, "CancelPlan", plan_id, etag, PlanAction.CANCEL, reason, call, mutate, also=also
        )
        if self._executions is not None:
            for eid in stopped:
                self._executions.stop_soon(eid)
        return plan

    def attach_executions(self, executions: PlanExecutions) -> None:
        """The engine, which CancelPlan asks to cancel a running execution
        (it is built after this service, which it uses)."""
        self._executions = executions

    async def set_mode(
        self,
        actor: Principal,
        mode: GovernanceMode,
        etag: str,
        reason: str,
        call: Call | None = None,
    ) -> ModeSetting:
        """Changes the governance mode (admin; the caller checks the role)."""
        checked_etag(etag)
        checked_text(reason, "reason")

        def unit(uow: UnitOfWork) -> ModeSetting:
            current = uow.modes.get(for_update=True)
            check_etag("governance/mode", etag, current.etag)
            now = self._clock.now()
            new = ModeSetting(mode, current.version + 1, now, actor.name)
            if not uow.modes.replace(new, current.version):
                latest = uow.modes.get()
                raise etag_mismatch("governance/mode", latest.etag)
            self._record(
                uow,
                actor,
                current,
                "SetGovernanceMode",
                EventKind.MODE_CHANGED,
                new,
                "governance/mode",
                current.etag,
                new.etag,
                reason,
                {"from": current.mode.value, "to": mode.value},
                call=call,
                result=new,
            )
            return new

        return await self._store.write(unit)

    async def check_execute(self, actor: Principal, name: str, etag: str) -> Plan:
        """The plan, if ``actor`` may execute it now: the etag is current, the
        plan is ACTIVE, and the mode (with its full_ai bounds) allows it."""
        plan_id = parse_name(name, "plans", "plan")
        checked_etag(etag)

        def unit(uow: UnitOfWork) -> Plan:
            plan = self._load(uow, plan_id, etag)
            mode = uow.modes.get()
            self._check_governed(uow, mode, plan, actor, PlanAction.EXECUTE)
            return plan

        plan = await self._store.read(unit)
        require_transition(plan, PlanAction.EXECUTE)
        return plan

    def complete_in(
        self, uow: UnitOfWork, plan_id: str, execution: str, actor: Principal
    ) -> Plan | None:
        """ACTIVE -> EXECUTED inside the caller's transaction (the execution
        that filled every leg); None if the plan moved on meanwhile."""
        plan = uow.plans.get(plan_id)
        if plan is None or plan.state is not PlanState.ACTIVE:
            return None
        now = self._clock.now()
        done = plan.moved(PlanAction.COMPLETE, now, execute_time=now)
        self._replace(uow, done, plan)
        mode = uow.modes.get()
        self._record(
            uow,
            actor,
            mode,
            "ExecutePlan",
            EventKind.PLAN_EXECUTED,
            done,
            plan.name,
            plan.etag,
            done.etag,
            f"every leg filled by {execution}",
        )
        return done

    async def amend_response(self, call: Call | None, result: object) -> None:
        """Stores the final response of a request whose work went on after its
        first transaction (ProposePlan with auto_advance)."""
        await self._store.write(lambda uow: self._recorder.amend(uow, call, result))

    async def auto_advance(
        self, actor: Principal, plan: Plan, may: Callable[[str], bool]
    ) -> AutoAdvance:
        """For an ai principal in FULL_AI: review, approve and activate its new
        plan as far as the bounds allow, each step its own audited
        transaction; stops at the first refusal and says why. ``may(rpc)``
        tells whether the actor holds the role of that step's RPC."""
        steps: list[str] = []
        for rpc, step in (
            ("ReviewPlan", "review"),
            ("ApprovePlan", "approve"),
            ("ActivatePlan", "activate"),
        ):
            if not may(rpc):
                return AutoAdvance(plan, steps, f"{actor.name} lacks the role for {rpc}")
            try:
                if step == "review":
                    plan = await self.review(actor, plan.name, plan.etag, "auto-advance (FULL_AI)")
                elif step == "approve":
                    plan = await self.approve(actor, plan.name, plan.etag, "auto-advance (FULL_AI)")
                else:
                    plan = (await self.activate(actor, plan.name, plan.etag, False, "")).plan
            except GovexError as refusal:
                return AutoAdvance(plan, steps, f"{step}: {refusal.reason}: {refusal.message}")
            steps.append(step)
        return AutoAdvance(plan, steps, "")
