"""Starting an execution: from the ACTIVE plan to committed order rows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from govex_server.domain.clock import Clock
from govex_server.domain.errors import (
    Category,
    GovexError,
    etag_mismatch,
    failed_precondition,
    invalid_field,
)
from govex_server.domain.events import ExecutionChange
from govex_server.domain.execution.blockers import refusal_reason
from govex_server.domain.execution.orders import OrderState, client_order_id
from govex_server.domain.execution.records import (
    ExecutionRecord,
    ExecutionState,
    OrderRecord,
    Strategy,
)
from govex_server.domain.ids import UlidFactory
from govex_server.domain.principals import Principal
from govex_server.exchanges.base import ExchangeRegistry
from govex_server.services.execution_views import ExecuteRequest, ExecutionView
from govex_server.services.governance import GovernanceService
from govex_server.services.leases import Claim
from govex_server.services.order_records import OrderRecorder
from govex_server.services.planning import ExecutionPlanner, PlanValidation
from govex_server.services.recorder import Call, Recorder
from govex_server.services.supervisor import Supervisor
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.engine")


DEFAULT_PARALLEL = 4  # what SEQUENTIAL records; it sends one at a time anyway
MAX_PARALLEL = 64


class ExecutionStarter:
    """ExecutePlan: validation, legs, schedule, and the rows of the orders,
    committed before the runner starts (or a dry run, kept SIMULATED)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        governance: GovernanceService,
        planner: ExecutionPlanner,
        exchanges: ExchangeRegistry,
        recorder: Recorder,
        records: OrderRecorder,
        supervisor: Supervisor,
        accepting: Callable[[], bool],
    ) -> None:
        self._store = store
        self._clock = clock
        self._governance = governance
        self._planner = planner
        self._exchanges = exchanges
        self._recorder = recorder
        self._records = records
        self._supervisor = supervisor
        self._accepting = accepting
        self._ids = UlidFactory()

    async def execute(
        self, actor: Principal, request: ExecuteRequest, call: Call | None = None
    ) -> ExecutionView:
        """Starts (or dry-runs) the execution of the ACTIVE plan."""
        if not self._accepting():
            raise GovexError(
                Category.UNAVAILABLE,
                "RECONCILING",
                "open orders are being reconciled; executions start after that",
                retry_after_seconds=1,
            )
        if request.strategy is Strategy.PARALLEL and not 1 <= request.max_parallel <= MAX_PARALLEL:
            raise invalid_field(
                "max_parallel", f"{request.max_parallel}: PARALLEL needs 1 to {MAX_PARALLEL}"
            )
        if not 0 <= request.max_parallel <= MAX_PARALLEL:
            raise invalid_field("max_parallel", f"{request.max_parallel}: 0 to {MAX_PARALLEL}")
        parallel = request.max_parallel or DEFAULT_PARALLEL
        plan = await self._governance.check_execute(actor, request.plan, request.etag)
        validation = await self._planner.validate(request.plan, request.exchange, request.level)
        if not validation.executable:
            raise _refusal(plan.name, validation)
        exchange = self._exchanges.get(request.exchange)
        now = self._clock.now()
        execution = ExecutionRecord(
            id=self._ids.new(now),
            plan_id=plan.id,
            exchange=exchange.account,
            state=ExecutionState.SIMULATED if request.dry_run else ExecutionState.RUNNING,
            strategy=request.strategy,
            max_parallel=parallel,
            safety_level=(request.level or self._planner.default_level).value,
            actor=actor.name,
            actor_kind=actor.kind.value,
            legs=tuple(validation.legs.legs),
            policy=validation.policy,
            portfolio_value=validation.legs.portfolio_value,
            create_time=now,
            dry_run=request.dry_run,
        )
        orders = self._rows(execution, validation, now)
        if request.dry_run:
            # Fills simulated at the reference price; nothing is sent or stored.
            simulated = [
                replace(
                    o,
                    state=OrderState.FILLED,
                    filled=o.quantity,
                    average_price=o.reference_price,
                    state_reason="simulated (dry run)",
                )
                for o in orders
            ]
            dry = ExecutionView(
                replace(execution, state_reason="dry run: nothing was sent", end_time=now),
                simulated,
            )

            def store_dry(uow: UnitOfWork) -> None:
                # Stored as SIMULATED (GetExecution, ListExecutions and
                # ListOrders show it), audited, replayed by its request_id;
                # no order event: nothing happened on an exchange.
                uow.executions.add(dry.execution)
                for order in simulated:
                    uow.orders.add(order)
                self._recorder.record(
                    uow, call, self._audit(actor, execution, plan.etag, orders, call), (), dry
                )

            await self._store.write(store_dry)
            return dry

        leases = self._records.leases

        def unit(uow: UnitOfWork) -> Claim:
            # The plan may have moved while the pipeline ran (cancelled,
            # superseded): the execution starts only from the version checked.
            current = uow.plans.get(plan.id)
            if current is None or current.version != plan.version:
                raise etag_mismatch(plan.name, current.etag if current else "")
            if uow.executions.running_for_plan(plan.id) is not None:
                raise GovexError(
                    Category.ABORTED,
                    "EXECUTION_RUNNING",
                    f"{plan.name} already has a running execution",
                    metadata={"resource": plan.name},
                )
            uow.executions.add(execution)
            # Its lease is this replica's from the start: no other replica
            # can claim it between the commit and the runner's first step.
            claim = leases.claim_new_in(uow, execution.id)
            for order in orders:
                uow.orders.add(order)
                self._records.order_event(uow, order, execution)
            self._records.execution_event(uow, execution, orders, ExecutionChange.STARTED)
            view = ExecutionView(execution, orders)
            self._recorder.record(
                uow, call, self._audit(actor, execution, plan.etag, orders, call), (), view
            )
            return claim

        started = leases.monotonic()
        leases.hold(await self._store.write(unit), started)
        self._supervisor.spawn(execution.id)
        return ExecutionView(execution, orders)

    def _audit(
        self,
        actor: Principal,
        execution: ExecutionRecord,
        plan_etag: str,
        orders: Sequence[OrderRecord],
        call: Call | None,
    ) -> AuditRecord:
        dry = " (dry run)" if execution.dry_run else ""
        return AuditRecord.by(
            actor,
            at=execution.create_time,
            # Either service's ExecutePlan, as the caller called it.
            rpc=call.rpc if call is not None else "ExecutePlan",
            resource=execution.name,
            etag_before=plan_etag,
            reason=f"{len(orders)} orders on exchanges/{execution.exchange}{dry}",
            details={
                "plan": f"plans/{execution.plan_id}",
                "strategy": execution.strategy.value,
                "dry_run": execution.dry_run,
            },
        )

    def _rows(
        self, execution: ExecutionRecord, validation: PlanValidation, now: datetime
    ) -> list[OrderRecord]:
        when = {
            (s.leg_index, s.slice_index): (s.scheduled_time, s.day) for s in validation.schedule
        }
        legs = {leg.index: leg for leg in validation.legs.legs}
        out = []
        for planned in validation.orders:
            leg = legs[planned.leg_index]
            scheduled, day = when[(planned.leg_index, planned.slice_index)]
            out.append(
                OrderRecord(
                    id=self._ids.new(now),
                    execution_id=execution.id,
                    client_order_id=client_order_id(
                        execution.id, planned.leg_index, planned.slice_index, 0
                    ),
                    symbol=planned.symbol,
                    side=planned.side.value,
                    quantity=planned.quantity,
                    price=planned.price,
                    reference_price=leg.price,
                    leg_index=planned.leg_index,
                    slice_index=planned.slice_index,
                    attempt=0,
                    operation=leg.operation.value,
                    day=day,
                    scheduled_time=scheduled,
                    state=OrderState.PENDING,
                    create_time=now,
                    update_time=now,
                )
            )
        return out


def _refusal(plan: str, validation: PlanValidation) -> GovexError:
    text = "; ".join(validation.blocking_reasons)
    reason = refusal_reason(kind for kind, _ in validation.blockers)
    return failed_precondition(reason, plan, f"{plan} cannot be executed now: {text}"[:2000])
