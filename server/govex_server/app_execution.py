"""Composition of the execution side: the exchange accounts (each behind
the metrics' wrapper), the planner, the engine and ConnectExchange."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.engine import make_url

from govex_server.config import ConfigError, Settings
from govex_server.domain import money
from govex_server.domain.clock import Clock
from govex_server.domain.execution.leases import LeaseTerms
from govex_server.domain.execution.resting import RestingRule
from govex_server.domain.execution.safety import Level, Limits
from govex_server.exchanges.base import ExchangeRegistry
from govex_server.exchanges.paper import PaperConfig, PaperExchange
from govex_server.exchanges.paper_book import PaperBook
from govex_server.exchanges.rate_limit import OrderRateLimiter
from govex_server.observability.measured_exchange import MeasuredExchange
from govex_server.observability.metrics import Metrics
from govex_server.services.accounts import AccountService
from govex_server.services.engine import ExecutionEngine
from govex_server.services.freezes import FreezeService
from govex_server.services.governance import GovernanceService
from govex_server.services.planning import ExecutionPlanner
from govex_server.services.policy import PolicyService
from govex_server.services.recorder import Recorder
from govex_server.store.database import Store

log = logging.getLogger("govex.app")


def build_execution(
    settings: Settings,
    clock: Clock,
    store: Store,
    governance: GovernanceService,
    policy: PolicyService,
    freezes: FreezeService,
    recorder: Recorder,
    metrics: Metrics,
) -> tuple[ExchangeRegistry, ExecutionPlanner, ExecutionEngine, AccountService]:
    """The exchange accounts, the planner, the engine and ConnectExchange."""
    try:
        paper = (
            PaperConfig.load(settings.paper_exchange_file)
            if settings.paper_exchange_file
            else PaperConfig()
        )
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"paper_exchange_file: {exc}") from None
    exchanges = ExchangeRegistry(
        [PaperExchange("paper", paper, PaperBook(paper_book_path(settings), paper.balances))],
        wrap=lambda exchange: MeasuredExchange(exchange, metrics),
    )
    limits = Limits(
        max_order_notional=money.exact(settings.max_order_notional),
        daily_notional_limit=money.exact(settings.daily_notional_limit),
        price_collar_bps=settings.price_collar_bps,
        allowed_symbols=None,
        live_trading_enabled=settings.live_trading_enabled,
        fee_rate=paper.fee_rate,
    )
    planner = ExecutionPlanner(
        store,
        governance,
        policy,
        freezes,
        exchanges,
        limits,
        Level(settings.safety_level),
        clock,
        settings.max_execution_days,
    )
    window = timedelta(seconds=settings.order_window_seconds)
    limiters = {
        e.account: OrderRateLimiter(clock, settings.max_orders_per_window, window)
        for e in exchanges.all()
    }
    engine = ExecutionEngine(
        store,
        clock,
        governance,
        planner,
        freezes,
        exchanges,
        limiters,
        limits,
        recorder,
        RestingRule(timedelta(seconds=settings.order_ttl_seconds), settings.max_attempts),
        LeaseTerms(settings.lease_seconds),
    )
    governance.attach_executions(engine)
    accounts = AccountService(
        store,
        clock,
        exchanges,
        limiters,
        settings.credentials_key,
        settings.live_trading_enabled,
        settings.max_orders_per_window,
        window,
        recorder,
    )
    return exchanges, planner, engine, accounts


def paper_book_path(settings: Settings) -> str:
    """Where the paper exchange keeps its book: the setting, else beside a
    SQLite database; with PostgreSQL and no setting, in memory (logged)."""
    if settings.paper_book_file:
        return settings.paper_book_file
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return f"{url.database}.paper-book"
    log.warning("paper_book_file is not set: the paper exchange's book lives in memory")
    return ":memory:"


def paper_book_seconds(exchanges: ExchangeRegistry) -> dict[str, float]:
    """CPU seconds each paper account's book has spent (for the metrics)."""
    books = {}
    for exchange in exchanges.all():
        inner = getattr(exchange, "inner", exchange)  # behind the metrics' wrapper
        if isinstance(inner, PaperExchange):
            books[exchange.account] = inner.book_seconds
    return books
