"""What the execution benchmarks share: an engine over a real SQLite store
and a paper account, and running executions with their orders pre-inserted
(the runner is what is measured, not ExecutePlan: the policy's ramp spreads a
real plan's slices over hours).

The portfolio value is large against the orders (10^9 against at most a
million traded): the engine applies the current policy's daily cap (3% with no
signals) to the account's traded notional, and a benchmark that crossed it
would see its last slices deferred to the next day, correctly, and wait."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from govex_server.api.event_codec import encode_event
from govex_server.domain.clock import SystemClock
from govex_server.domain.execution.leases import LeaseTerms
from govex_server.domain.execution.legs import Leg, Side
from govex_server.domain.execution.orders import OrderState, client_order_id
from govex_server.domain.execution.records import (
    ExecutionRecord,
    ExecutionState,
    OrderRecord,
    Strategy,
)
from govex_server.domain.execution.safety import Level, Limits
from govex_server.domain.freezes import Operation
from govex_server.domain.ids import UlidFactory
from govex_server.domain.phase import PhaseSettings
from govex_server.domain.policy import Policy, PolicyMode
from govex_server.domain.policy_settings import PolicySettings
from govex_server.exchanges.base import Exchange, ExchangeRegistry
from govex_server.exchanges.paper import PaperConfig, PaperExchange
from govex_server.exchanges.paper_book import PaperBook
from govex_server.services.bounds import PolicyBounds
from govex_server.services.engine import ExecutionEngine
from govex_server.services.freezes import FreezeService
from govex_server.services.governance import GovernanceService
from govex_server.services.planning import ExecutionPlanner
from govex_server.services.policy import PolicyService
from govex_server.store.database import Store, UnitOfWork
from govex_server.store.migrate import migrate

PORTFOLIO_VALUE = Decimal(1_000_000_000)


@dataclass
class Rig:
    """An engine, its store and the paper account behind it."""

    engine: ExecutionEngine
    store: Store
    paper: PaperExchange
    book_file: Path
    book: PaperBook
    # The engine's freezes (a test places one mid-run).
    freezes: FreezeService


async def rig(
    latency_ms: float = 0.0,
    wrap: Callable[[PaperExchange], Exchange] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    daily_notional_limit: Decimal = Decimal("1e12"),
    database_url: str | None = None,
    quote_balance: Decimal = Decimal(10_000_000),
) -> Rig:
    """A fresh store and paper account; ``wrap`` puts a transport (a flaky
    one) between the engine and the account; ``monotonic`` is the clock of
    the engine's lease deadlines; ``daily_notional_limit`` is the safety
    rules' limit on an account's notional a day; ``database_url`` an empty
    database (default: a new SQLite file); ``quote_balance`` the account's
    USDT."""
    tmp = Path(tempfile.mkdtemp(prefix="govex-exec-bench-"))
    clock = SystemClock()
    store = Store(database_url or f"sqlite:///{tmp}/govex.db", encode_event)
    await migrate(store)
    policy = PolicyService(store, clock, PolicySettings(), PhaseSettings())
    governance = GovernanceService(store, clock, timedelta(hours=24), PolicyBounds(policy, clock))
    freezes = FreezeService(store, clock, policy.rederive_in)
    config = PaperConfig(
        balances={"USDT": quote_balance},
        prices={"BTC": Decimal(50_000)},
        latency_ms=latency_ms,
    )
    book_file = tmp / "book.db"
    book = PaperBook(str(book_file), config.balances)
    paper = PaperExchange("paper", config, book)
    exchanges = ExchangeRegistry([wrap(paper) if wrap else paper])
    limits = Limits(Decimal("1e9"), daily_notional_limit, 600, None, False, config.fee_rate)
    planner = ExecutionPlanner(
        store, governance, policy, freezes, exchanges, limits, Level.MODERATE, clock
    )
    # The benchmarks run executions themselves, without the engine's lease
    # heartbeat (start() would spawn runners of its own beside them): a
    # lease long enough for any run, so that none is given up unrenewed.
    engine = ExecutionEngine(
        store,
        clock,
        governance,
        planner,
        freezes,
        exchanges,
        {},
        limits,
        lease_terms=LeaseTerms(seconds=600),
        monotonic=monotonic,
    )
    return Rig(engine, store, paper, book_file, book, freezes)


async def add_executions(store: Store, count: int, orders: int, parallel: int) -> list[str]:
    """``count`` RUNNING executions of ``orders`` BTC buys of 0.01 each, all
    due now; their names."""
    ids = UlidFactory()
    now = SystemClock().now()
    executions = [
        ExecutionRecord(
            id=ids.new(now),
            plan_id=ids.new(now),
            exchange="paper",
            state=ExecutionState.RUNNING,
            strategy=Strategy.PARALLEL,
            max_parallel=parallel,
            safety_level="MODERATE",
            actor="bench",
            actor_kind="human",
            legs=(
                Leg(
                    index=0,
                    asset="BTC",
                    symbol="BTC/USDT",
                    side=Side.BUY,
                    current_percent=0,
                    target_percent=10,
                    notional=Decimal(500 * orders),
                    quantity=Decimal("0.01") * orders,
                    price=Decimal(50_000),
                    operation=Operation.PURCHASE,
                    requires=frozenset({Operation.PURCHASE, Operation.REBALANCING}),
                ),
            ),
            policy=Policy(PolicyMode.NORMAL, 0.5, 1.0, Decimal(100), 30, 0.01, 10, (), now),
            portfolio_value=PORTFOLIO_VALUE,
            create_time=now,
        )
        for _ in range(count)
    ]

    def unit(uow: UnitOfWork) -> None:
        for execution in executions:
            uow.executions.add(execution)
            for i in range(orders):
                uow.orders.add(
                    OrderRecord(
                        id=ids.new(now),
                        execution_id=execution.id,
                        client_order_id=client_order_id(execution.id, 0, i, 0),
                        symbol="BTC/USDT",
                        side="BUY",
                        quantity=Decimal("0.01"),
                        price=Decimal(50_150),
                        reference_price=Decimal(50_000),
                        leg_index=0,
                        slice_index=i,
                        attempt=0,
                        operation="PURCHASE",
                        day=0,
                        scheduled_time=now,
                        state=OrderState.PENDING,
                        create_time=now,
                        update_time=now,
                    )
                )

    await store.write(unit)
    return [e.id for e in executions]
