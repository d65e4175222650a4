"""Governance use cases: plans through their lifecycle under the mode, the
four-eyes rules and the cooldown; the mode itself. Each use case is one
transaction that also writes its audit record (and idempotency record)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol, TypeVar

from govex_server.domain import filters, list_filters
from govex_server.domain.clock import Clock
from govex_server.domain.errors import (
    GovexError,
    etag_mismatch,
    failed_precondition,
    invalid_field,
    not_found,
    permission_denied,
)
from govex_server.domain.events import DomainEvent, EventKind, Payload
from govex_server.domain.freezes import Freeze, Operation, Verdict, verdict
from govex_server.domain.governance import (
    CooldownStatus,
    GovernanceMode,
    ModeSetting,
    check_cancel,
    check_cooldown,
    check_propose,
    check_step,
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
    combined_etag,
    require_transition,
)
from govex_server.domain.principals import Principal
from govex_server.domain.targets import validate_targets
from govex_server.services.bounds import FullAiBounds
from govex_server.services.read_cache import ReadCache
from govex_server.services.recorder import Call, Recorder
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store, UnitOfWork

MAX_TEXT = 1000

_EVENTS = {
    PlanAction.UPDATE: EventKind.PLAN_UPDATED,
    PlanAction.REVIEW: EventKind.PLAN_REVIEWED,
    PlanAction.APPROVE: EventKind.PLAN_APPROVED,
    PlanAction.REJECT: EventKind.PLAN_REJECTED,
    PlanAction.CANCEL: EventKind.PLAN_CANCELLED,
}
T = TypeVar("T")


@dataclass(frozen=True)
class Activation:
    """The result of ActivatePlan."""

    plan: Plan
    superseded: Plan | None


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


@dataclass(frozen=True)
class GovernanceSnapshot:
    """What GetGovernanceState reads in one transaction."""

    mode: ModeSetting
    active_plan: Plan | None
    counts: dict[PlanState, int]
    cooldown: CooldownStatus
    freezes: list[Freeze]
    verdicts: list[Verdict]
    read_time: datetime
    etag: str


@dataclass(frozen=True)
class _Facts:
    """The stored facts behind GetGovernanceState (time-free, so cacheable)."""

    mode: ModeSetting
    active: Plan | None
    counts: dict[PlanState, int]
    last_activation: tuple[datetime, str] | None
    unended_freezes: list[Freeze]

    @cached_property
    def etag(self) -> str:
        parts = [
            ",".join(f.id for f in self.unended_freezes),
            self.mode.etag,
            self.active.etag if self.active else "-",
            ",".join(f"{s.value}={self.counts[s]}" for s in PlanState),
            self.last_activation[1] if self.last_activation else "-",
        ]
        return combined_etag(*parts)


def _text(value: str, field_name: str, *, required: bool = False) -> str:
    if required and not value.strip():
        raise invalid_field(field_name, "required")
    if len(value) > MAX_TEXT:
        raise invalid_field(field_name, f"{len(value)} characters: at most {MAX_TEXT}")
    return value


def _etag(value: str, field_name: str = "etag") -> str:
    if not value:
        raise invalid_field(field_name, "required: send the etag you read (AIP-154)")
    return value


class PlanExecutions(Protocol):
    """What CancelPlan needs of the execution engine."""

    def cancel_for_plan_in(
        self, uow: UnitOfWork, plan_id: str, actor: Principal, reason: str
    ) -> str | None:
        """Cancels the plan's running execution in ``uow``; its id."""

    def stop_soon(self, execution_id: str) -> None:
        """After the commit: the execution's runner stops it."""


class GovernanceService:
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
        self._recorder = recorder or Recorder()
        self._store = store
        self._clock = clock
        self._cooldown = cooldown
        self._bounds = bounds
        self._ids = ids or UlidFactory()
        self.read_cache: ReadCache[_Facts] = ReadCache(store)
        # (facts, active freeze ids, verdicts, etag) of the last snapshot.
        self._derived: tuple[_Facts, tuple[str, ...], list[Verdict], str] | None = None
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
        now = self._clock.now()
        return await self._store.read(lambda uow: self._cooldown_status(uow, now))

    async def snapshot(self) -> GovernanceSnapshot:
        """Mode, active plan, counts and cooldown, read together."""
        facts = await self.read_cache.get(self._read_facts)
        now = self._clock.now()
        last = facts.last_activation
        cooldown = CooldownStatus(
            self._cooldown,
            last[0] if last else None,
            f"plans/{last[1]}" if last else None,
            now,
        )
        freezes = [f for f in facts.unended_freezes if f.active_at(now)]
        # Verdicts and etag depend on the facts and on which freezes are
        # active, not on the time itself: computed once per change.
        active_ids = tuple(f.id for f in freezes)
        derived = self._derived
        if derived is None or derived[0] is not facts or derived[1] != active_ids:
            derived = self._derived = (
                facts,
                active_ids,
                *self._verdicts_and_etag(facts, freezes, now),
            )
        verdicts, etag = derived[2], derived[3]
        return GovernanceSnapshot(
            facts.mode, facts.active, facts.counts, cooldown, freezes, verdicts, now, etag
        )

    @staticmethod
    def _verdicts_and_etag(
        facts: _Facts, freezes: list[Freeze], now: datetime
    ) -> tuple[list[Verdict], str]:
        verdicts = [verdict(op, freezes, now) for op in Operation]
        if len(freezes) == len(facts.unended_freezes):
            return verdicts, facts.etag
        # The etag changes when a freeze expires by the clock, before the
        # expiry task has recorded it.
        return verdicts, combined_etag(facts.etag, ",".join(f.id for f in freezes))

    async def _read_facts(self) -> _Facts:
        return await self._store.read(
            lambda uow: _Facts(
                uow.modes.get(),
                uow.plans.active(),
                uow.plans.count_by_state(),
                uow.plans.last_activation(),
                uow.freezes.unended(),
            )
        )

    async def mode(self) -> ModeSetting:
        """The governance mode."""
        return await self._store.read(lambda uow: uow.modes.get())

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
        _text(reason, "reason")

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
        _etag(etag, "plan.etag")
        if targets is None and reason is None:
            raise invalid_field("update_mask", "names no field to update: targets, reason")
        checked = None if targets is None else validate_targets(targets, "plan.targets")
        if reason is not None:
            _text(reason, "plan.reason")

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
        _text(reason, "reason", required=True)
        return await self._step(actor, "RejectPlan", name, etag, PlanAction.REJECT, reason, call)

    async def cancel(
        self, actor: Principal, name: str, etag: str, reason: str, call: Call | None = None
    ) -> Plan:
        """Any non-terminal state -> CANCELLED. Approvers, operators and admins
        may cancel any plan; a proposer only its own."""
        plan_id = parse_name(name, "plans")
        _etag(etag)
        _text(reason, "reason")

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
        _etag(etag)
        _text(override_reason, "override_reason", required=override_cooldown)

        def unit(uow: UnitOfWork) -> Activation:
            # Locking the mode row serialises activations across replicas, so
            # the cooldown and the supersede read below cannot race.
            mode = uow.modes.get(for_update=True)
            plan = self._load(uow, plan_id, etag)
            self._check_governed(uow, mode, plan, actor, PlanAction.ACTIVATE)
            require_transition(plan, PlanAction.ACTIVATE)
            now = self._clock.now()
            status = self._cooldown_status(uow, now)
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

    async def set_mode(
        self,
        actor: Principal,
        mode: GovernanceMode,
        etag: str,
        reason: str,
        call: Call | None = None,
    ) -> ModeSetting:
        """Changes the governance mode (admin; the caller checks the role)."""
        _etag(etag)
        _text(reason, "reason")

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
        _etag(etag)

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

    # ---------------------------------------------------------------- helpers

    async def _step(
        self,
        actor: Principal,
        rpc: str,
        name: str,
        etag: str,
        action: PlanAction,
        comment: str,
        call: Call | None,
    ) -> Plan:
        plan_id = parse_name(name, "plans")
        _etag(etag)
        _text(comment, "comment")
        step_field = {
            PlanAction.REVIEW: "reviewed",
            PlanAction.APPROVE: "approved",
            PlanAction.REJECT: "rejected",
        }[action]

        def mutate(plan: Plan, mode: ModeSetting, now: datetime) -> Plan:
            return plan.moved(action, now, **{step_field: Step.by(actor, now, comment)})

        return await self._transition(
            actor, rpc, plan_id, etag, action, comment, call, mutate, governed=True
        )

    async def _transition(
        self,
        actor: Principal,
        rpc: str,
        plan_id: str,
        etag: str,
        action: PlanAction,
        reason: str,
        call: Call | None,
        mutate: Callable[[Plan, ModeSetting, datetime], Plan],
        *,
        governed: bool = False,
        also: Callable[[UnitOfWork, Plan], None] | None = None,
    ) -> Plan:
        """Load, check etag, check the governed step, check the transition,
        write conditionally, audit, remember: one transaction (``also``
        adds its writes to it)."""

        def unit(uow: UnitOfWork) -> Plan:
            plan = self._load(uow, plan_id, etag)
            mode = uow.modes.get()
            if governed:
                self._check_governed(uow, mode, plan, actor, action)
            require_transition(plan, action)
            now = self._clock.now()
            new = mutate(plan, mode, now)
            self._replace(uow, new, plan)
            if also is not None:
                also(uow, new)
            self._record(
                uow,
                actor,
                mode,
                rpc,
                _EVENTS[action],
                new,
                plan.name,
                plan.etag,
                new.etag,
                reason,
                call=call,
                result=new,
            )
            return new

        return await self._store.write(unit)

    def _load(self, uow: UnitOfWork, plan_id: str, etag: str) -> Plan:
        plan = uow.plans.get(plan_id)
        if plan is None:
            raise not_found("govex.io/Plan", f"plans/{plan_id}")
        check_etag(plan.name, etag, plan.etag)
        return plan

    def _check_governed(
        self,
        uow: UnitOfWork,
        mode: ModeSetting,
        plan: Plan,
        actor: Principal,
        action: PlanAction,
    ) -> None:
        violations = []
        if not actor.is_human and mode.mode is GovernanceMode.FULL_AI:
            violations = self._bounds.violations(uow, plan)
        check_step(mode.mode, plan, actor, action, violations)

    def _replace(self, uow: UnitOfWork, new: Plan, old: Plan) -> None:
        if not uow.plans.replace(new, old.version):
            latest = uow.plans.get(old.id)
            raise etag_mismatch(old.name, latest.etag if latest else "")

    def _cooldown_status(self, uow: UnitOfWork, now: datetime) -> CooldownStatus:
        last = uow.plans.last_activation()
        return CooldownStatus(
            self._cooldown,
            last[0] if last else None,
            f"plans/{last[1]}" if last else None,
            now,
        )

    def _record(
        self,
        uow: UnitOfWork,
        actor: Principal,
        mode: ModeSetting,
        rpc: str,
        event: EventKind,
        payload: Payload,
        resource: str,
        etag_before: str | None,
        etag_after: str | None,
        reason: str,
        details: dict[str, Any] | None = None,
        *,
        call: Call | None = None,
        result: object = None,
    ) -> None:
        """The audit record and the event of one change (and, for the call's
        own change, its idempotency record), in its transaction."""
        now = self._clock.now()
        audit = AuditRecord.by(
            actor,
            at=now,
            mode=mode.mode.value,
            rpc=rpc,
            resource=resource,
            etag_before=etag_before,
            etag_after=etag_after,
            reason=reason,
            details=details or {},
        )
        event_ = DomainEvent(event, now, actor.name, resource, payload)
        self._recorder.record(uow, call, audit, [event_], result)
