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
the store does not know are adopted.

This module puts the parts together (DESIGN.md's names): starting an
execution (execution_start), a runner per execution (runner) under a
supervisor (supervisor), the order manager (order_manager) writing through
the recorder (order_records), cancels (execution_cancels), reconciliation
(reconciler) and the reads (execution_views)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from govex_server.domain.clock import Clock, SystemClock
from govex_server.domain.events import ExecutionChange
from govex_server.domain.execution.leases import LeaseTerms
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import ExecutionState, OrderRecord
from govex_server.domain.execution.resting import RestingRule
from govex_server.domain.execution.safety import Limits
from govex_server.domain.principals import Principal
from govex_server.exchanges.base import ExchangeRegistry
from govex_server.exchanges.rate_limit import Budget, OrderRateLimiter
from govex_server.services.execution_cancels import ExecutionCancels
from govex_server.services.execution_start import ExecutionStarter
from govex_server.services.execution_views import ExecuteRequest, ExecutionQueries, ExecutionView
from govex_server.services.freezes import FreezeService
from govex_server.services.governance import GovernanceService
from govex_server.services.leases import Claim, Leases
from govex_server.services.order_manager import OrderManager
from govex_server.services.order_records import OrderRecorder
from govex_server.services.planning import ExecutionPlanner
from govex_server.services.reconciler import Reconciler
from govex_server.services.recorder import Call, Recorder
from govex_server.services.runner import Runner, RunnerSignals
from govex_server.services.supervisor import Supervisor
from govex_server.store.database import Store, UnitOfWork

__all__ = ["ExecuteRequest", "ExecutionEngine", "ExecutionView"]

log = logging.getLogger("govex.engine")


class ExecutionEngine:
    """Runs executions: one supervised runner per running execution."""

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
        lease_terms: LeaseTerms | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        recorder = recorder or Recorder()
        resting = resting or RestingRule()
        self._store = store
        self._planner = planner
        self._limiters = limiters
        signals = RunnerSignals()
        # Leases are kept between processes in real time (the heartbeat
        # sleeps real seconds), so they read the wall clock, not ``clock``
        # (a test's clock may stand still while replicas come and go).
        self.leases = leases = Leases(
            store, SystemClock(), lease_terms or LeaseTerms(), monotonic=monotonic
        )
        self.records = records = OrderRecorder(store, clock, governance, leases)
        orders = OrderManager(
            store, clock, records, freezes, planner, limiters, limits, resting, signals.stopping
        )
        self._queries = ExecutionQueries(store)
        runner = Runner(clock, self._queries, orders, records, exchanges, resting, signals)
        self._supervisor = Supervisor(store, clock, runner, signals, leases)
        self._reconciler = Reconciler(store, clock, exchanges, orders, records)
        self._starter = ExecutionStarter(
            store,
            clock,
            governance,
            planner,
            exchanges,
            recorder,
            records,
            self._supervisor,
            lambda: self.accepting,
        )
        self._cancels = ExecutionCancels(
            store, clock, freezes, recorder, records, self._supervisor, signals
        )
        self.accepting = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Claims the executions nobody owns, reconciles their orders,
        resumes them, then accepts new ones; from then on a heartbeat renews
        the leases held and takes over executions whose owner died."""
        claims = await self.leases.claim(note=self._note_claim)
        # Renewing from the first claim on: reconciliation may take longer
        # than a lease (a slow exchange), and must not lose what it holds.
        self._heartbeat = asyncio.create_task(self._beat(), name="execution-leases")
        await self._reconciler.reconcile(frozenset(c.execution_id for c in claims))
        for claim in claims:
            if self.leases.holds(claim.execution_id):
                self._supervisor.spawn(claim.execution_id)
        self.accepting = True

    async def stop(self) -> None:
        """Stops every runner (orders stay as they are; whoever claims them
        next reconciles them) and gives the leases up."""
        self.accepting = False
        for task in [t for t in (self._heartbeat, *self._background) if t is not None]:
            task.cancel()  # no takeover may spawn a runner after this
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._supervisor.stop()
        try:
            await self.leases.release_all()
        except Exception:
            # They expire instead: another replica waits lease_seconds.
            log.exception("the leases could not be released")

    async def reconcile(self) -> None:
        """Start-up reconciliation on its own (tests and benchmarks call it):
        claims what nobody holds, then reconciles every execution held."""
        await self.leases.claim(frozenset(self._supervisor.runners), self._note_claim)
        await self._reconciler.reconcile(frozenset(self.leases.held))

    async def _beat(self) -> None:
        """Every third of a lease: renew what is held (runners whose lease
        is lost stop at once), then claim what nobody holds any more."""
        while True:
            await asyncio.sleep(self.leases.terms.renew_every)
            try:
                self._supervisor.lose(await self.leases.renew())
                claims = await self.leases.claim(
                    frozenset(self._supervisor.runners), self._note_claim
                )
            except Exception:
                # Never the end of the heartbeat: without it every lease
                # here would run out and nothing would be taken over.
                log.exception("lease heartbeat failed; tried again in a heartbeat")
                continue
            if claims:
                self._take_over(claims)

    def _take_over(self, claims: list[Claim]) -> None:
        """Runs the claimed executions at once: each runner resolves every
        SUBMITTED or UNKNOWN order by client order id before it sends
        anything. Strays on the exchange are adopted beside them (listing an
        account may be slow; a takeover must not wait for it)."""
        ids = frozenset(c.execution_id for c in claims)
        for eid in sorted(ids):
            if eid not in self._supervisor.runners:
                self._supervisor.spawn(eid)

        async def adopt() -> None:
            try:
                await self._reconciler.reconcile(ids, resolve=False)
            except Exception:
                log.exception("adopting strays of executions taken over failed")

        task = asyncio.get_running_loop().create_task(adopt(), name="execution-takeover")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _note_claim(self, uow: UnitOfWork, claim: Claim) -> None:
        """A takeover, in the execution's events (a first claim is not one)."""
        if not claim.takes_over(self.leases.replica):
            return
        execution = uow.executions.get(claim.execution_id)
        if execution is not None:
            orders = uow.orders.tallies(execution.id)
            self.records.execution_event(uow, execution, orders, ExecutionChange.OWNER_CHANGED)

    async def run_supervised(self, execution_id: str) -> None:
        """One execution's supervised runner, to its end (the benchmarks),
        under its lease (claimed here if nobody holds it). It is the
        supervisor's registered runner: run outside the registry, a cancel
        started a second runner beside it, whose stop resolved the orders
        the first one was about to withdraw."""
        if not self.leases.holds(execution_id):
            await self.leases.claim(frozenset(self._supervisor.runners), self._note_claim)
        if execution_id not in self._supervisor.runners:
            self._supervisor.spawn(execution_id)
        await self._supervisor.runners[execution_id]

    # -------------------------------------------------------------- figures

    @property
    def limiters(self) -> dict[str, OrderRateLimiter]:
        """The order-rate budget of every account (ConnectExchange adds to it)."""
        return self._limiters

    @property
    def restarts(self) -> int:
        """Runner restarts after a failure, since start."""
        return self._supervisor.restarts

    @property
    def adopted(self) -> list[str]:
        """Client order ids adopted by reconciliation, since start."""
        return self._reconciler.adopted

    @property
    def adoption_failures(self) -> int:
        """Accounts whose orders reconciliation could not list."""
        return self._reconciler.adoption_failures

    @property
    def max_execution_days(self) -> int:
        """The longest schedule an execution may have."""
        return self._planner.max_days

    def budget(self, account: str) -> Budget | None:
        """The order-rate budget of an account."""
        limiter = self._limiters.get(account)
        return limiter.budget() if limiter is not None else None

    # -------------------------------------------------------------- signals

    def poke(self, execution_id: str | None = None) -> None:
        """Something changed (a fill, a freeze): runners look again."""
        self._supervisor.poke(execution_id)

    def on_freeze_created(self) -> None:
        """Store listener: a freeze was created somewhere."""
        self._cancels.on_freeze_created()

    def on_executions_changed(self) -> None:
        """Store listener: executions changed (maybe on another replica: a
        cancel the owner must act on within a second)."""
        task = asyncio.get_running_loop().create_task(self._cancels.cancels_recorded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def freezes_changed(self) -> None:
        """A FULL_FREEZE cancels every running execution here."""
        await self._cancels.freezes_changed()

    # ------------------------------------------------------------ requests

    async def execute(
        self, actor: Principal, request: ExecuteRequest, call: Call | None = None
    ) -> ExecutionView:
        """Starts (or dry-runs) the execution of the ACTIVE plan."""
        return await self._starter.execute(actor, request, call)

    async def cancel(
        self, actor: Principal, name: str, reason: str, call: Call | None = None
    ) -> ExecutionView:
        """CancelExecution: CANCELLING at once, CANCELLED when confirmed."""
        return await self._cancels.cancel(actor, name, reason, call)

    def cancel_for_plan_in(
        self, uow: UnitOfWork, plan_id: str, actor: Principal, reason: str
    ) -> str | None:
        """CancelPlan's part, in its unit of work."""
        return self._cancels.cancel_for_plan_in(uow, plan_id, actor, reason)

    def stop_soon(self, execution_id: str) -> None:
        """After a committed cancel: this server's runner stops it."""
        self._supervisor.stop_soon(execution_id)

    async def get(self, name: str) -> ExecutionView:
        """One execution and its orders."""
        return await self._queries.get(name)

    async def list_executions(
        self,
        states: Sequence[ExecutionState],
        plan: str,
        page_size: int,
        page_token: str,
        filter_text: str = "",
    ) -> tuple[list[ExecutionView], str]:
        """ListExecutions."""
        return await self._queries.list_executions(states, plan, page_size, page_token, filter_text)

    async def list_orders(
        self,
        parent: str,
        states: Sequence[OrderState],
        page_size: int,
        page_token: str,
        filter_text: str = "",
    ) -> tuple[list[OrderRecord], str]:
        """ListOrders."""
        return await self._queries.list_orders(parent, states, page_size, page_token, filter_text)
