"""The execution engine: from the ACTIVE plan to orders on an exchange.

Every order row is committed (PENDING) before the exchange hears of it; the
client order id is derived from (execution, leg, slice, attempt); a send whose
outcome is unknown is resolved by looking the client order id up, and only a
lookup that finds nothing allows a new attempt (a new id). Freezes are checked
when the execution starts and again right before each send; a FULL_FREEZE
stops every running execution and cancels its open orders. Slices wait for
their scheduled time (also across restarts: they are rows). On start, every
order whose outcome is not final is reconciled with its exchange before new
executions are accepted, and orders the exchange has under our prefix that
the store does not know are adopted."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from govex_server.domain import filters, list_filters, money
from govex_server.domain.clock import Clock
from govex_server.domain.errors import (
    Category,
    GovexError,
    etag_mismatch,
    failed_precondition,
    invalid_field,
    not_found,
)
from govex_server.domain.events import (
    DomainEvent,
    EventKind,
    ExecutionChange,
    ExecutionUpdate,
    OrderUpdate,
)
from govex_server.domain.execution.budget import day_cap, deferral
from govex_server.domain.execution.legs import Leg, Side
from govex_server.domain.execution.orders import (
    PREFIX,
    OrderState,
    client_order_id,
    next_fill,
    parse_client_order_id,
)
from govex_server.domain.execution.orders import move as move_state
from govex_server.domain.execution.pricing import limit_order, step_refusal
from govex_server.domain.execution.records import (
    ExecutionRecord,
    ExecutionState,
    OrderRecord,
    Strategy,
    outcome,
)
from govex_server.domain.execution.restarts import failures_in_a_row, restart_delay
from govex_server.domain.execution.resting import RestingRule
from govex_server.domain.execution.safety import (
    Level,
    Limits,
    Market,
    ProposedOrder,
    Verdict,
    validate,
)
from govex_server.domain.freezes import FreezeType, Operation, allows
from govex_server.domain.ids import UlidFactory, parse_name
from govex_server.domain.paging import filter_key, next_token, parse_page
from govex_server.domain.principals import Principal, PrincipalKind
from govex_server.exchanges.base import (
    Balance,
    Exchange,
    ExchangeOrder,
    ExchangeRegistry,
    parse_account,
)
from govex_server.exchanges.errors import (
    ExchangeError,
    ExchangeUnavailable,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)
from govex_server.exchanges.rate_limit import Budget, OrderRateLimiter
from govex_server.services.freezes import FreezeService
from govex_server.services.governance import GovernanceService
from govex_server.services.planning import ExecutionPlanner, PlanValidation
from govex_server.services.recorder import Call, Recorder
from govex_server.services.waiting import until_or_poked
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.engine")

DEFAULT_PARALLEL = 4  # what SEQUENTIAL records; it sends one at a time anyway
MAX_PARALLEL = 64
POLL_OPEN_SECONDS = 0.5
SEND_RETRIES = 5


STILL_CANCELLING = " (still cancelling: "


def cancel_reason(execution: ExecutionRecord) -> str:
    """A CANCELLING execution's reason, without the runner's last error."""
    return execution.state_reason.split(STILL_CANCELLING)[0]


@dataclass(frozen=True)
class ExecuteRequest:
    """What ExecutePlan asks for."""

    plan: str
    etag: str
    dry_run: bool
    strategy: Strategy
    max_parallel: int
    exchange: str
    level: Level | None


@dataclass(frozen=True)
class ExecutionView:
    """An execution and its orders."""

    execution: ExecutionRecord
    orders: list[OrderRecord]


@dataclass
class _Quotes:
    """Prices, markets and balances read once for a round of sends; what the
    round's placed orders take is reserved here, so that the balance check of
    each later order sees it."""

    prices: Mapping[str, Decimal]
    markets: Mapping[str, Market]
    balances: Mapping[str, Balance]
    # The daily cap of the policy in force at the round (a fraction).
    current_cap: float
    reserved: dict[str, Decimal] = field(default_factory=dict)

    def free(self, asset: str) -> Decimal:
        """What is free of ``asset`` for the next order of the round."""
        held = self.balances[asset].free if asset in self.balances else money.ZERO
        return held - self.reserved.get(asset, money.ZERO)

    def reserve(self, asset: str, amount: Decimal) -> None:
        """Takes ``amount`` of ``asset`` for an order just placed."""
        self.reserved[asset] = self.reserved.get(asset, money.ZERO) + amount


def _status_to_state(order: ExchangeOrder) -> OrderState:
    if order.status == "closed":
        return OrderState.FILLED
    if order.status == "canceled":
        return OrderState.CANCELLED
    if order.status == "rejected":
        return OrderState.REJECTED
    return OrderState.PARTIALLY_FILLED if order.filled > 0 else OrderState.OPEN


class ExecutionEngine:
    """Runs executions: one task per running execution."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        governance: GovernanceService,
        planner: ExecutionPlanner,
        freezes: FreezeService,
        exchanges: ExchangeRegistry,
        limiters: dict[str, OrderRateLimiter],
        limits: Limits,
        recorder: Recorder | None = None,
        resting: RestingRule | None = None,
    ) -> None:
        self._recorder = recorder or Recorder()
        self._resting = resting or RestingRule()
        self._store = store
        self._clock = clock
        self._governance = governance
        self._planner = planner
        self._freezes = freezes
        self._exchanges = exchanges
        self._limiters = limiters
        self._limits = limits
        self._ids = UlidFactory()
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._cancel: dict[str, str] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.accepting = False
        self.adopted: list[str] = []
        # Accounts whose orders reconciliation could not list.
        self.adoption_failures = 0
        # Runner restarts after a failure, since start (for the benchmark).
        self.restarts = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Reconciles, resumes running executions, then accepts new ones."""
        await self.reconcile()
        running = await self._store.read(lambda uow: uow.executions.running())
        for execution in running:
            self._spawn(execution.id)
        self.accepting = True

    async def stop(self) -> None:
        """Stops every runner (orders stay as they are; the next start
        reconciles them)."""
        self.accepting = False
        tasks = list(self._runners.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    def _spawn(self, execution_id: str) -> None:
        self._wake[execution_id] = asyncio.Event()
        task = asyncio.create_task(self._run(execution_id), name=f"execution-{execution_id}")
        self._runners[execution_id] = task
        task.add_done_callback(lambda _t: self._runners.pop(execution_id, None))

    @property
    def max_execution_days(self) -> int:
        """The longest schedule an execution may have."""
        return self._planner.max_days

    def budget(self, account: str) -> Budget | None:
        """The order-rate budget of an account."""
        limiter = self._limiters.get(account)
        return limiter.budget() if limiter is not None else None

    def poke(self, execution_id: str | None = None) -> None:
        """Something changed (a fill, a freeze): runners look again."""
        for eid, event in self._wake.items():
            if execution_id is None or eid == execution_id:
                event.set()

    def on_freeze_created(self) -> None:
        """Store listener: a freeze was created somewhere."""
        task = asyncio.get_running_loop().create_task(self.freezes_changed())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def freezes_changed(self) -> None:
        """A FULL_FREEZE stops every running execution and cancels its open
        orders; other freezes take effect at the next send."""
        active = await self._freezes.active()
        full = [f for f in active if f.type is FreezeType.FULL_FREEZE]
        if full:
            reason = f"{full[0].name} FULL_FREEZE"

            def unit(uow: UnitOfWork) -> list[str]:
                live = [e for e in uow.executions.running() if e.id in self._runners]
                return [self._cancelling_in(uow, e, reason).id for e in live]

            for eid in await self._store.write(unit):
                self._cancel.setdefault(eid, reason)
        self.poke()

    # ------------------------------------------------------------ requests

    async def execute(
        self, actor: Principal, request: ExecuteRequest, call: Call | None = None
    ) -> ExecutionView:
        """Starts (or dry-runs) the execution of the ACTIVE plan."""
        if not self.accepting:
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
            legs=tuple(_leg_json(leg) for leg in validation.legs.legs),
            policy=validation.policy.to_json(),
            portfolio_value=validation.legs.portfolio_value,
            create_time=now,
            dry_run=request.dry_run,
        )
        orders = self._orders(execution, validation, now)
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

        def unit(uow: UnitOfWork) -> None:
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
            for order in orders:
                uow.orders.add(order)
                self._event(uow, order, execution.state)
            self._execution_event(uow, execution, orders, ExecutionChange.STARTED)
            view = ExecutionView(execution, orders)
            self._recorder.record(
                uow, call, self._audit(actor, execution, plan.etag, orders, call), (), view
            )

        await self._store.write(unit)
        self._spawn(execution.id)
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
            self._cancelling_in(uow, execution, why)
            view = ExecutionView(
                uow.executions.get(execution_id) or execution,
                uow.orders.for_execution(execution_id),
            )
            self._recorder.record(uow, call, audit, (), view)
            return view

        view = await self._store.write(accept)
        self.stop_soon(execution_id)
        return view

    def stop_soon(self, execution_id: str) -> None:
        """After a cancel is committed: this server's runner stops the
        execution (one is started if none runs here, so that a failing
        exchange is retried under the supervisor, never in the request)."""
        self._cancel.setdefault(execution_id, "")
        self.poke(execution_id)
        if execution_id not in self._runners:
            self._spawn(execution_id)

    def _cancelling_in(
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
            return self._cancelling_in(uow, latest, reason)
        orders = uow.orders.for_execution(execution.id)
        self._execution_event(uow, cancelling, orders, ExecutionChange.STATE_CHANGED)
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
        self._cancelling_in(uow, execution, why.removesuffix(":"))
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

    async def get(self, name: str) -> ExecutionView:
        """One execution and its orders."""
        execution_id = parse_name(name, "executions")

        def unit(uow: UnitOfWork) -> ExecutionView:
            execution = uow.executions.get(execution_id)
            if execution is None:
                raise not_found("govex.io/Execution", name)
            return ExecutionView(execution, uow.orders.for_execution(execution_id))

        return await self._store.read(unit)

    async def list_executions(
        self,
        states: Sequence[ExecutionState],
        plan: str,
        page_size: int,
        page_token: str,
        filter_text: str = "",
    ) -> tuple[list[ExecutionView], str]:
        """Executions newest first, with their orders, meeting the AIP-160
        ``filter_text`` (whose plan and exchange are resource names)."""
        plan_id = parse_name(plan, "plans", "plan") if plan else None
        conditions = [
            replace(c, value=parse_name(c.value, "plans", "filter"))
            if c.field == "plan"
            else replace(c, value=parse_account(c.value, "filter"))
            if c.field == "exchange"
            else c
            for c in filters.parse(filter_text, list_filters.EXECUTIONS)
        ]
        key = filter_key([plan, *sorted(s.value for s in states), *filters.key(conditions)])
        page = parse_page(page_size, page_token, key)

        def unit(uow: UnitOfWork) -> tuple[list[ExecutionRecord], list[ExecutionView]]:
            found = uow.executions.list(states, plan_id, page.after_id, page.size + 1, conditions)
            views = [ExecutionView(e, uow.orders.for_execution(e.id)) for e in found[: page.size]]
            return found, views

        found, views = await self._store.read(unit)
        token = next_token(page, views[-1].execution.id if views else None, len(found) > page.size)
        return views, token

    async def list_orders(
        self,
        parent: str,
        states: Sequence[OrderState],
        page_size: int,
        page_token: str,
        filter_text: str = "",
    ) -> tuple[list[OrderRecord], str]:
        """Orders oldest first, of one execution or of all ("executions/-"),
        meeting the AIP-160 ``filter_text``."""
        execution_id = (
            None if parent == "executions/-" else parse_name(parent, "executions", "parent")
        )
        conditions = filters.parse(filter_text, list_filters.ORDERS)
        key = filter_key([parent, *sorted(s.value for s in states), *filters.key(conditions)])
        page = parse_page(page_size, page_token, key)

        def unit(uow: UnitOfWork) -> list[OrderRecord]:
            if execution_id is not None and uow.executions.get(execution_id) is None:
                raise not_found("govex.io/Execution", parent)
            return uow.orders.page(execution_id, states, page.after_id, page.size + 1, conditions)

        found = await self._store.read(unit)
        orders = found[: page.size]
        return orders, next_token(page, orders[-1].id if orders else None, len(found) > page.size)

    # ------------------------------------------------------------ building

    def _orders(
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

    # --------------------------------------------------------------- runner

    async def _run(self, execution_id: str) -> None:
        """The supervisor of one execution's runner: a runner that fails (an
        exchange or store error) runs again after a growing, jittered wait,
        forever; a cancel or a freeze cuts the wait short."""
        failures = 0
        while True:
            started = self._clock.now()
            try:
                await self._loop(execution_id)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = failures_in_a_row(failures, self._clock.now() - started)
                self.restarts += 1
                delay = restart_delay(failures, random.random())
                if isinstance(exc, ExchangeError):
                    log.warning(
                        "execution %s: runner stopped by the exchange (%s); restart %d in %.1fs",
                        execution_id,
                        exc,
                        failures,
                        delay.total_seconds(),
                    )
                else:
                    log.exception(
                        "execution %s: runner failed; restart %d in %.1fs",
                        execution_id,
                        failures,
                        delay.total_seconds(),
                    )
                await self._note_failure(execution_id, f"restart {failures} after: {exc}")
                wake = self._wake.setdefault(execution_id, asyncio.Event())
                wake.clear()
                await until_or_poked(self._clock, self._clock.now() + delay, wake)

    async def _note_failure(self, execution_id: str, text: str) -> None:
        """The runner's last error, on the execution (GetExecution shows it
        in state_reason while it runs; the end's reason replaces it)."""

        def unit(uow: UnitOfWork) -> None:
            current = uow.executions.get(execution_id)
            if current is None or current.state.terminal:
                return
            noted_text = text
            if current.state is ExecutionState.CANCELLING:
                # The cancel's reason stays first: it is how the end reads.
                noted_text = f"{cancel_reason(current)}{STILL_CANCELLING}{text})"
            noted = replace(current, state_reason=noted_text[:500], version=current.version + 1)
            uow.executions.replace(noted, current.version)

        try:
            await self._store.write(unit)
        except Exception:
            log.exception("execution %s: the runner's error could not be recorded", execution_id)

    async def _loop(self, execution_id: str) -> None:
        wake = self._wake.setdefault(execution_id, asyncio.Event())
        while True:
            wake.clear()
            view = await self.get(f"executions/{execution_id}")
            execution, orders = view.execution, view.orders
            if execution.state.terminal:
                return
            exchange = self._exchanges.get(f"exchanges/{execution.exchange}")
            if execution.state is ExecutionState.CANCELLING:
                # The stored state is the truth (it survives a restart); the
                # flag only stops a send round of this server at once.
                self._cancel[execution_id] = execution.state_reason
                await self._stop(execution, orders, exchange, cancel_reason(execution))
                continue
            if all(o.state.terminal for o in orders):
                await self._finish(execution, orders)
                return
            for order in orders:
                if order.state in (OrderState.SUBMITTED, OrderState.UNKNOWN):
                    await self._resolve(execution, order, exchange)
            resting = [
                o for o in orders if o.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED)
            ]
            if resting:
                resting = await self._refresh_all(execution, resting, exchange)
            now = self._clock.now()
            stale = [o for o in resting if self._resting.stale(o.send_time, now)]
            if stale:
                await self._reprice_all(execution, stale, exchange)
                continue
            due = [o for o in orders if o.state is OrderState.PENDING and o.scheduled_time <= now]
            if due:
                await self._send_all(execution, due, exchange)
                continue
            await self._wait(execution, orders, wake)

    async def _wait(
        self, execution: ExecutionRecord, orders: Sequence[OrderRecord], wake: asyncio.Event
    ) -> None:
        pending = [o.scheduled_time for o in orders if o.state is OrderState.PENDING]
        open_orders = any(
            not o.state.terminal and o.state is not OrderState.PENDING for o in orders
        )
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(wake.wait())]
        if pending:
            waiters.append(asyncio.ensure_future(self._clock.sleep_until(min(pending))))
        if open_orders:
            waiters.append(asyncio.ensure_future(asyncio.sleep(POLL_OPEN_SECONDS)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _send_all(
        self, execution: ExecutionRecord, due: list[OrderRecord], exchange: Exchange
    ) -> None:
        sells = [o for o in due if o.side == Side.SELL.value]
        buys = [o for o in due if o.side == Side.BUY.value]
        # One price and market look-up for the round (not one per order):
        # every order of the round is priced at the same moment.
        assets = sorted({o.symbol.split("/")[0] for o in due})
        quotes = _Quotes(
            await exchange.prices(assets),
            await exchange.markets(),
            await exchange.balances(),
            (await self._planner.policy_now()).cap_daily,
        )
        if execution.strategy is Strategy.SEQUENTIAL:
            for order in [*sells, *buys]:
                if execution.id in self._cancel:
                    return
                await self._send(execution, order, exchange, quotes)
            return
        # PARALLEL: bounded concurrency, sells (which fund the buys) first.
        gate = asyncio.Semaphore(execution.max_parallel)

        async def one(order: OrderRecord) -> None:
            async with gate:
                if execution.id not in self._cancel:
                    await self._send(execution, order, exchange, quotes)

        for batch in (sells, buys):
            await asyncio.gather(*(one(o) for o in batch))

    async def _send(
        self, execution: ExecutionRecord, order: OrderRecord, exchange: Exchange, quotes: _Quotes
    ) -> None:
        leg = execution.legs[order.leg_index]
        requires = {Operation(op) for op in leg["requires"]}
        now = self._clock.now()
        blocking = [
            f
            for f in await self._freezes.active()
            if not all(allows(f.type, op) for op in requires)
        ]
        if blocking:
            names = ", ".join(f"{f.name} ({f.type.value})" for f in blocking)
            await self._move(execution, order, OrderState.CANCELLED, reason=f"forbidden by {names}")
            return
        # Price the order now: a slice sent days later uses that day's price.
        asset = order.symbol.split("/")[0]
        reference = quotes.prices.get(asset, order.reference_price)
        market = quotes.markets.get(order.symbol, Market(money.ZERO, money.ZERO, money.ZERO))
        slippage_bps = int(execution.policy.get("slippage_limit_bps", 0))
        quantity, price = limit_order(
            Side(order.side),
            money.mul(order.quantity, order.reference_price),
            reference,
            slippage_bps,
            market,
        )
        if why := step_refusal(reference, slippage_bps, market):
            await self._move(execution, order, OrderState.REJECTED, reason=why[:500])
            return
        quote = exchange.quote
        cap = day_cap(
            execution.portfolio_value,
            float(execution.policy.get("cap_daily", 0)),
            quotes.current_cap,
        )
        limiter = self._limiters.get(exchange.account)
        if limiter is not None:
            await limiter.acquire()

        def decide(uow: UnitOfWork) -> OrderRecord:
            # Read and decide in the unit that records the decision: the
            # day's traded notional cannot move between the check and the
            # SUBMITTED row.
            used = uow.daily_notional.get(exchange.account, now.date())
            twin = uow.orders.by_client_id(order.client_order_id)
            # The duplicate rule: this client order id belongs to another order.
            known = {order.client_order_id} if twin is not None and twin.id != order.id else set()
            # The schedule spreads the cap, but a late slice (a restart, a
            # backlog) or a cap lowered since the start must not push
            # today's traded notional over it.
            tomorrow = deferral(now, used, money.mul(quantity, price), cap)
            if tomorrow is not None:
                return self._move_in(
                    uow,
                    execution,
                    order,
                    OrderState.PENDING,
                    reason=f"deferred: today's cap of {cap:.2f} is used",
                    scheduled_time=tomorrow,
                )
            verdict = validate(
                ProposedOrder(
                    order.client_order_id,
                    order.symbol,
                    order.side,
                    quantity,
                    price,
                    reference,
                    exchange.sandbox,
                ),
                self._limits,
                market,
                used,
                quotes.free(quote),
                quotes.free(asset),
                known,
                Level(execution.safety_level),
            )
            safety = _verdict_json(verdict)
            if not verdict.passed:
                rules = ", ".join(sorted({i.rule for i in verdict.issues}))
                return self._move_in(
                    uow,
                    execution,
                    order,
                    OrderState.REJECTED,
                    reason=f"safety: {rules}",
                    safety=safety,
                )
            return self._move_in(
                uow,
                execution,
                order,
                OrderState.SUBMITTED,
                quantity=quantity,
                price=price,
                reference_price=reference,
                safety=safety,
                send_time=now,
            )

        order = await self._store.write(decide)
        if order.state is not OrderState.SUBMITTED:
            # Deferred or refused before the exchange heard of it: a backlog
            # of late slices must not use up the account's order budget.
            if limiter is not None:
                limiter.release()
            return
        # What this order will take is no longer free for the round's others.
        if order.side == Side.BUY.value:
            quotes.reserve(
                quote, money.mul(money.mul(order.quantity, order.price), 1 + self._limits.fee_rate)
            )
        else:
            quotes.reserve(asset, order.quantity)
        for attempt in range(SEND_RETRIES):
            try:
                placed = await exchange.create_order(
                    order.client_order_id, order.symbol, order.side, order.quantity, order.price
                )
            except RateLimited as exc:
                # Refused before it was placed: the same id may be sent again.
                if limiter is not None:
                    limiter.retry_after(exc.retry_after)
                    await limiter.acquire()
                continue
            except ExchangeUnavailable:
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
                continue
            except OrderRejected as exc:
                await self._move(execution, order, OrderState.REJECTED, reason=str(exc)[:500])
                return
            except OutcomeUnknown as exc:
                order = await self._move(
                    execution, order, OrderState.UNKNOWN, reason=f"outcome unknown: {exc}"[:500]
                )
                await self._resolve(execution, order, exchange)
                return
            await self._apply(execution, order, placed)
            return
        await self._move(
            execution,
            order,
            OrderState.REJECTED,
            reason=f"not placed after {SEND_RETRIES} tries (exchange unavailable or rate limited)",
        )

    async def _resolve(
        self, execution: ExecutionRecord, order: OrderRecord, exchange: Exchange
    ) -> None:
        """Finds out what became of a send: by client order id, never by
        resending it under a new id without knowing."""
        try:
            found = await exchange.fetch_order(order.client_order_id, order.symbol)
        except OrderNotFound:
            # The exchange never got it: a new attempt (a new id) is safe.
            await self._move(
                execution,
                order,
                OrderState.REJECTED,
                reason="not found at the exchange after an unknown outcome; retried",
                retry=True,
            )
            return
        except ExchangeError as exc:
            log.warning(
                "execution %s: %s still unresolved: %s", execution.id, order.client_order_id, exc
            )
            return
        await self._apply(execution, order, found)

    async def _refresh_all(
        self, execution: ExecutionRecord, resting: Sequence[OrderRecord], exchange: Exchange
    ) -> list[OrderRecord]:
        """One poll of the resting orders: looked up together (bounded by the
        execution's concurrency), and every fill of the poll recorded with
        its events in one unit of work. The orders still resting after it."""
        gate = asyncio.Semaphore(execution.max_parallel)

        async def look_up(order: OrderRecord) -> tuple[OrderRecord, ExchangeOrder | None]:
            async with gate:
                try:
                    return order, await exchange.fetch_order(order.client_order_id, order.symbol)
                except ExchangeError:
                    return order, None

        found = await asyncio.gather(*(look_up(o) for o in resting))
        changed = [
            (order, now)
            for order, now in found
            if now is not None and (now.status != "open" or now.filled != order.filled)
        ]
        updated: dict[str, OrderRecord] = {}
        if changed:
            moved = await self._store.write(
                lambda uow: [self._apply_in(uow, execution, o, f) for o, f in changed]
            )
            updated = {o.id: o for o in moved}
        latest = [updated.get(o.id, o) for o in resting]
        return [o for o in latest if o.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED)]

    async def _reprice_all(
        self, execution: ExecutionRecord, stale: Sequence[OrderRecord], exchange: Exchange
    ) -> None:
        """Cancels orders that rested past the TTL and sends what is left of
        each as its next attempt; a cancel the exchange refuses stops the
        runner for the supervisor's backoff (the order stays as it is)."""
        for order in stale:
            await self._reprice(execution, order, exchange)

    async def _reprice(
        self, execution: ExecutionRecord, order: OrderRecord, exchange: Exchange
    ) -> None:
        limiter = self._limiters.get(exchange.account)
        if limiter is not None:
            await limiter.acquire()
        ended = await exchange.cancel_order(order.client_order_id, order.symbol)
        left = order.quantity - ended.filled
        attempt = self._resting.next_attempt(order.attempt, left)
        reason = (
            f"rested {self._resting.ttl.total_seconds():g}s unfilled: cancelled, "
            f"re-sent as attempt {attempt}"
            if attempt is not None
            else self._resting.exhausted(order.attempt)
        )

        def unit(uow: UnitOfWork) -> None:
            moved = self._apply_in(uow, execution, order, ended, reason)
            # A fill that won the race leaves nothing to send again.
            if moved.state is OrderState.CANCELLED and attempt is not None:
                self._again(uow, execution, moved, attempt, left, reason)

        await self._store.write(unit)
        log.info("execution %s: %s %s", execution.id, order.client_order_id, reason)

    async def _refresh(
        self, execution: ExecutionRecord, order: OrderRecord, exchange: Exchange
    ) -> None:
        try:
            found = await exchange.fetch_order(order.client_order_id, order.symbol)
        except ExchangeError:
            return
        if found.status != "open" or found.filled != order.filled:
            await self._apply(execution, order, found)

    async def _stop(
        self,
        execution: ExecutionRecord,
        orders: Sequence[OrderRecord],
        exchange: Exchange,
        reason: str,
    ) -> None:
        refused: ExchangeError | None = None
        limiter = self._limiters.get(exchange.account)
        for order in orders:
            if order.state is OrderState.PENDING:
                await self._move(execution, order, OrderState.CANCELLED, reason=reason)
            elif order.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED):
                # A cancel is a call like a send: inside the account's budget.
                if limiter is not None:
                    await limiter.acquire()
                try:
                    ended = await exchange.cancel_order(order.client_order_id, order.symbol)
                except ExchangeError as exc:
                    log.warning("cancel of %s failed: %s", order.client_order_id, exc)
                    refused = exc
                    continue
                await self._apply(execution, order, ended, reason)
            elif order.state in (OrderState.SUBMITTED, OrderState.UNKNOWN):
                await self._resolve(execution, order, exchange)
        remaining = await self._store.read(lambda uow: uow.orders.for_execution(execution.id))
        if all(o.state.terminal for o in remaining):
            await self._finish(execution, remaining, reason)
        elif refused is not None:
            # The supervisor tries again after a growing wait, not at once
            # (a refused cancel retried in a loop hammered the exchange).
            raise refused

    async def _finish(
        self, execution: ExecutionRecord, orders: Sequence[OrderRecord], cancelled_by: str = ""
    ) -> None:
        state, reason = outcome(orders, cancelled_by)
        now = self._clock.now()

        def unit(uow: UnitOfWork) -> bool:
            current = uow.executions.get(execution.id)
            if current is None or current.state.terminal:
                return False
            ended = replace(
                current,
                state=state,
                state_reason=reason,
                end_time=now,
                version=current.version + 1,
            )
            if not uow.executions.replace(ended, current.version):
                return False
            if state is ExecutionState.SUCCEEDED:
                actor = Principal(current.actor, PrincipalKind(current.actor_kind), frozenset())
                self._governance.complete_in(uow, current.plan_id, current.name, actor)
            self._execution_event(uow, ended, orders, ExecutionChange.ENDED)
            return True

        if not await self._store.write(unit):
            return
        self._cancel.pop(execution.id, None)
        log.info("execution %s ended %s: %s", execution.id, state.value, reason)

    # ------------------------------------------------------------ recording

    async def _apply(
        self,
        execution: ExecutionRecord,
        order: OrderRecord,
        found: ExchangeOrder,
        reason: str = "",
    ) -> OrderRecord:
        return await self._store.write(
            lambda uow: self._apply_in(uow, execution, order, found, reason)
        )

    def _apply_in(
        self,
        uow: UnitOfWork,
        execution: ExecutionRecord,
        order: OrderRecord,
        found: ExchangeOrder,
        reason: str = "",
    ) -> OrderRecord:
        """Records what the exchange says of ``order``, in the caller's unit.
        A report whose fill went back or exceeds the order's quantity is not
        recorded (an error line says so): the order keeps what was known, and
        the next lookup may bring a sane report."""
        state = _status_to_state(found)
        if state is order.state and found.filled == order.filled:
            return order
        try:
            next_fill(order.name, order.filled, found.filled, order.quantity)
        except GovexError as exc:
            log.error("exchange report for %s ignored: %s", order.name, exc.message)
            return order
        traded = money.notional(
            money.mul(
                max(money.ZERO, found.filled - order.filled), found.average_price or order.price
            )
        )
        return self._move_in(
            uow,
            execution,
            order,
            state,
            reason=reason or found.status,
            filled=found.filled,
            average_price=found.average_price,
            fee=found.fee,
            exchange_order_id=found.exchange_id,
            traded=traded,
        )

    async def _move(
        self,
        execution: ExecutionRecord,
        order: OrderRecord,
        state: OrderState,
        *,
        reason: str = "",
        traded: Decimal = money.ZERO,
        retry: bool = False,
        **changes: object,
    ) -> OrderRecord:
        """One order change, its event (and the retry order) in one transaction.
        The state machine is enforced; PENDING -> PENDING is a reschedule."""
        return await self._store.write(
            lambda uow: self._move_in(
                uow, execution, order, state, reason=reason, traded=traded, retry=retry, **changes
            )
        )

    def _move_in(
        self,
        uow: UnitOfWork,
        execution: ExecutionRecord,
        order: OrderRecord,
        state: OrderState,
        *,
        reason: str = "",
        traded: Decimal = money.ZERO,
        retry: bool = False,
        **changes: object,
    ) -> OrderRecord:
        """``_move`` inside the caller's unit of work."""
        if state is not order.state or state is not OrderState.PENDING:
            move_state(order.name, order.state, state)
        now = self._clock.now()
        moved = replace(
            order,
            state=state,
            state_reason=reason or order.state_reason,
            update_time=now,
            **changes,  # type: ignore[arg-type]
        )
        if not uow.orders.replace(moved, order.state):
            latest = uow.orders.get(order.id)
            return latest or order
        self._event(uow, moved, execution.state)
        if traded > 0:
            uow.daily_notional.add(execution.exchange, now.date(), traded)
        if retry:
            self._again(
                uow, execution, order, order.attempt + 1, order.quantity, "retry after a lost send"
            )
        return moved

    def _again(
        self,
        uow: UnitOfWork,
        execution: ExecutionRecord,
        order: OrderRecord,
        attempt: int,
        quantity: Decimal,
        reason: str,
    ) -> None:
        """The slice of ``order`` sent again as ``attempt`` (a new client
        order id), due now and priced when it is sent."""
        now = self._clock.now()
        again = replace(
            order,
            id=self._ids.new(now),
            attempt=attempt,
            client_order_id=client_order_id(
                execution.id, order.leg_index, order.slice_index, attempt
            ),
            quantity=quantity,
            state=OrderState.PENDING,
            state_reason=reason,
            scheduled_time=now,
            create_time=now,
            update_time=now,
            send_time=None,
            exchange_order_id="",
            filled=money.ZERO,
            average_price=money.ZERO,
            fee=money.ZERO,
            safety={},
        )
        uow.orders.add(again)
        self._event(uow, again, execution.state)

    def _execution_event(
        self,
        uow: UnitOfWork,
        execution: ExecutionRecord,
        orders: Sequence[OrderRecord],
        change: ExecutionChange,
    ) -> None:
        uow.events.append(
            DomainEvent(
                EventKind.EXECUTION_UPDATED,
                self._clock.now(),
                "",
                execution.name,
                ExecutionUpdate(execution, tuple(orders), change),
            )
        )

    def _event(self, uow: UnitOfWork, order: OrderRecord, state: ExecutionState) -> None:
        uow.events.append(
            DomainEvent(
                EventKind.ORDER_UPDATED,
                self._clock.now(),
                "",
                order.name,
                OrderUpdate(order, state),
            )
        )

    # ------------------------------------------------------- reconciliation

    async def reconcile(self) -> None:
        """Brings every order whose outcome is not final to its true state,
        and adopts orders the exchanges have under our prefix that the store
        does not know."""

        def unit(
            uow: UnitOfWork,
        ) -> tuple[list[OrderRecord], set[str], dict[str, ExecutionRecord]]:
            return (
                uow.orders.unresolved(),
                uow.orders.client_ids(),
                {e.id[-12:]: e for e in uow.executions.running()},
            )

        unresolved, known, running = await self._store.read(unit)
        for order in unresolved:
            execution_id = order.execution_id
            execution = await self._store.read(
                lambda uow: uow.executions.get(execution_id)  # noqa: B023 - awaited at once
            )
            if execution is None:
                continue
            exchange = self._exchanges.get(f"exchanges/{execution.exchange}")
            if order.state in (OrderState.SUBMITTED, OrderState.UNKNOWN):
                await self._resolve(execution, order, exchange)
            else:
                await self._refresh(execution, order, exchange)
        for exchange in self._exchanges.all():
            try:
                listed = await exchange.orders(PREFIX)
            except ExchangeError as exc:
                # Not silent: strays of this account stay unknown until the
                # next start can list them.
                log.error(
                    "reconciliation could not list the orders of %s, strays are not adopted: %s",
                    exchange.account,
                    exc,
                )
                self.adoption_failures += 1
                continue
            for found in listed:
                key = parse_client_order_id(found.client_id)
                if found.client_id in known or key is None:
                    continue
                execution = running.get(key.execution_tag)
                if execution is None or execution.exchange != exchange.account:
                    log.error(
                        "order %s on %s belongs to no running execution",
                        found.client_id,
                        exchange.account,
                    )
                    continue
                await self._adopt(execution, found, key.leg, key.slice, key.attempt)

    async def _adopt(
        self,
        execution: ExecutionRecord,
        found: ExchangeOrder,
        leg: int,
        slice_index: int,
        attempt: int,
    ) -> None:
        now = self._clock.now()
        legs = execution.legs
        operation = legs[leg]["operation"] if leg < len(legs) else "REBALANCING"
        adopted = OrderRecord(
            id=self._ids.new(now),
            execution_id=execution.id,
            client_order_id=found.client_id,
            symbol=found.symbol,
            side=found.side,
            quantity=found.quantity,
            price=found.price,
            reference_price=found.price,
            leg_index=leg,
            slice_index=slice_index,
            attempt=attempt,
            operation=operation,
            day=0,
            scheduled_time=now,
            state=_status_to_state(found),
            create_time=now,
            update_time=now,
            state_reason="adopted at reconciliation",
            exchange_order_id=found.exchange_id,
            filled=found.filled,
            average_price=found.average_price,
            fee=found.fee,
        )

        def unit(uow: UnitOfWork) -> None:
            uow.orders.add(adopted)
            self._event(uow, adopted, execution.state)

        await self._store.write(unit)
        self.adopted.append(found.client_id)
        log.warning("adopted order %s of %s found on the exchange", found.client_id, execution.name)


def _leg_json(leg: Leg) -> dict[str, object]:
    return {
        "index": leg.index,
        "asset": leg.asset,
        "symbol": leg.symbol,
        "side": leg.side.value,
        "operation": leg.operation.value,
        "requires": sorted(op.value for op in leg.requires),
        "current_percent": leg.current_percent,
        "target_percent": leg.target_percent,
        "notional": money.text(leg.notional),
        "quantity": money.text(leg.quantity),
        "skip_reason": leg.skip_reason,
    }


def _verdict_json(verdict: Verdict) -> dict[str, object]:
    return {
        "passed": verdict.passed,
        "score": verdict.score,
        "level": verdict.level.value,
        "issues": [
            {"rule": i.rule, "severity": i.severity.value, "message": i.message}
            for i in verdict.issues
        ],
    }


def _refusal(plan: str, validation: PlanValidation) -> GovexError:
    text = "; ".join(validation.blocking_reasons)
    if any("forbidden by" in r for r in validation.blocking_reasons):
        reason = "FROZEN"
    elif any("policy mode is FREEZE" in r for r in validation.blocking_reasons):
        reason = "POLICY_FREEZE"
    elif any("cannot be reached" in r or " market on " in r for r in validation.blocking_reasons):
        reason = "TARGET_UNREACHABLE"
    elif any("safety refused" in r for r in validation.blocking_reasons):
        reason = "SAFETY_REJECTED"
    else:
        reason = "PLAN_STATE"
    return failed_precondition(reason, plan, f"{plan} cannot be executed now: {text}"[:2000])
