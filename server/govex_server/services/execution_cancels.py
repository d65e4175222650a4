"""Cancelling executions: CancelExecution, CancelPlan and FULL_FREEZE."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from govex_server.domain.clock import Clock
from govex_server.domain.errors import failed_precondition, not_found
from govex_server.domain.events import ExecutionChange
from govex_server.domain.execution.records import ExecutionRecord, ExecutionState
from govex_server.domain.freezes import FreezeType
from govex_server.domain.ids import parse_name
from govex_server.domain.principals import Principal
from govex_server.services.execution_views import ExecutionView
from govex_server.services.freezes import FreezeService
from govex_server.services.order_records import OrderRecorder
from govex_server.services.recorder import Call, Recorder
from govex_server.services.runner import RunnerSignals
from govex_server.services.supervisor import Supervisor
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.engine")


class ExecutionCancels:
    """CancelExecution, CancelPlan's part and FULL_FREEZE: the execution
    becomes CANCELLING in the request's transaction, its runner does the
    rest."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        freezes: FreezeService,
        recorder: Recorder,
        records: OrderRecorder,
        supervisor: Supervisor,
        signals: RunnerSignals,
    ) -> None:
        self._store = store
        self._clock = clock
        self._freezes = freezes
        self._recorder = recorder
        self._records = records
        self._supervisor = supervisor
        self._signals = signals
        self._background: set[asyncio.Task[None]] = set()

    async def cancel(
        self, actor: Principal, name: str, reason: str, call: Call | None = None
    ) -> ExecutionView:
        """Stops sending and cancels open orders; always allowed. Returns at
        once with the execution CANCELLING (CANCELLED when the exchange has
        confirmed every cancel). Audited when accepted; a repeat of its
        request_id gets the execution as this call left it."""
        execution_id = parse_name(name, "executions")
        why = f"cancelled by {actor.name}: {reason}".strip().removesuffix(":")

        def accept(uow: UnitOfWork) -> ExecutionView:
            execution = uow.executions.get(execution_id)
            if execution is None:
                raise not_found("govex.io/Execution", name)
            if execution.state.terminal:
                raise failed_precondition(
                    "EXECUTION_STATE", name, f"{name} already ended ({execution.state.value})"
                )
            audit = AuditRecord.by(
                actor,
                at=self._clock.now(),
                rpc="CancelExecution",
                resource=name,
                reason=reason,
                details={"state": execution.state.value},
            )
            self.cancelling_in(uow, execution, why)
            view = ExecutionView(
                uow.executions.get(execution_id) or execution,
                uow.orders.for_execution(execution_id),
            )
            self._recorder.record(uow, call, audit, (), view)
            return view

        view = await self._store.write(accept)
        self._supervisor.stop_soon(execution_id)
        return view

    def cancelling_in(
        self, uow: UnitOfWork, execution: ExecutionRecord, reason: str
    ) -> ExecutionRecord:
        """RUNNING -> CANCELLING with the cancel's reason, and its event, in
        the caller's unit; an execution already CANCELLING keeps the first
        reason."""
        if execution.state is not ExecutionState.RUNNING:
            return execution
        cancelling = replace(
            execution,
            state=ExecutionState.CANCELLING,
            state_reason=reason[:500],
            version=execution.version + 1,
        )
        if not uow.executions.replace(cancelling, execution.version):
            latest = uow.executions.get(execution.id)
            if latest is None or latest.state is not ExecutionState.RUNNING:
                return latest or execution
            return self.cancelling_in(uow, latest, reason)
        orders = uow.orders.tallies(execution.id)
        self._records.execution_event(uow, cancelling, orders, ExecutionChange.STATE_CHANGED)
        return cancelling

    def cancel_for_plan_in(
        self, uow: UnitOfWork, plan_id: str, actor: Principal, reason: str
    ) -> str | None:
        """CancelPlan's part, in its unit of work: the plan's running
        execution becomes CANCELLING (audited). Its id, or None."""
        execution = uow.executions.running_for_plan(plan_id)
        if execution is None:
            return None
        why = f"cancelled with {f'plans/{plan_id}'} by {actor.name}: {reason}".strip()
        self.cancelling_in(uow, execution, why.removesuffix(":"))
        uow.audit.append(
            AuditRecord.by(
                actor,
                at=self._clock.now(),
                rpc="CancelPlan",
                resource=execution.name,
                reason=reason,
                details={"state": execution.state.value, "plan": f"plans/{plan_id}"},
            )
        )
        return execution.id

    def on_freeze_created(self) -> None:
        """Store listener: a freeze was created somewhere."""
        task = asyncio.get_running_loop().create_task(self.freezes_changed())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def freezes_changed(self) -> None:
        """A FULL_FREEZE stops every running execution and cancels its open
        orders; other freezes take effect at the next send. Every replica
        records the CANCELLING (the first one wins; the others find it done),
        whoever owns the execution: its owner's runner acts on it."""
        active = await self._freezes.active()
        full = [f for f in active if f.type is FreezeType.FULL_FREEZE]
        if full:
            reason = f"{full[0].name} FULL_FREEZE"

            def unit(uow: UnitOfWork) -> list[str]:
                return [self.cancelling_in(uow, e, reason).id for e in uow.executions.running()]

            for eid in await self._store.write(unit):
                if self._records.leases.holds(eid):
                    self._signals.stopping.setdefault(eid, reason)
        self._supervisor.poke()

    async def cancels_recorded(self) -> None:
        """Another replica changed executions (a cancel, a FULL_FREEZE): the
        ones this replica owns that are CANCELLING stop sending at once."""
        held = set(self._records.leases.held)
        if not held:
            return

        def unit(uow: UnitOfWork) -> list[tuple[str, str]]:
            return [
                (e.id, e.state_reason)
                for e in uow.executions.running()
                if e.id in held and e.state is ExecutionState.CANCELLING
            ]

        for eid, reason in await self._store.read(unit):
            self._signals.stopping.setdefault(eid, reason)
        self._supervisor.poke()
