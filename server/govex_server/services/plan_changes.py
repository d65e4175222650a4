"""The machinery every plan change shares: load and check the etag, check the
governed step and the transition, write conditionally, and record the audit
record, the event and the idempotency record in the same transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from govex_server.domain.clock import Clock
from govex_server.domain.errors import etag_mismatch, invalid_field, not_found
from govex_server.domain.events import DomainEvent, EventKind, Payload
from govex_server.domain.governance import GovernanceMode, ModeSetting, check_step
from govex_server.domain.ids import parse_name
from govex_server.domain.plans import Plan, PlanAction, Step, check_etag, require_transition
from govex_server.domain.principals import Principal
from govex_server.services.bounds import FullAiBounds
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


def checked_text(value: str, field_name: str, *, required: bool = False) -> str:
    """``value`` if it is a free text within MAX_TEXT (and present if ``required``)."""
    if required and not value.strip():
        raise invalid_field(field_name, "required")
    if len(value) > MAX_TEXT:
        raise invalid_field(field_name, f"{len(value)} characters: at most {MAX_TEXT}")
    return value


def checked_etag(value: str, field_name: str = "etag") -> str:
    """``value`` if the caller sent an etag at all."""
    if not value:
        raise invalid_field(field_name, "required: send the etag you read (AIP-154)")
    return value


class PlanChanges:
    """The base of the governance use cases that change plans and the mode."""

    def __init__(
        self, store: Store, clock: Clock, bounds: FullAiBounds, recorder: Recorder
    ) -> None:
        self._store = store
        self._clock = clock
        self._bounds = bounds
        self._recorder = recorder

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
        checked_etag(etag)
        checked_text(comment, "comment")
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
