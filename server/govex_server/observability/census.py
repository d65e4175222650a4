"""What the system's state is, read at scrape time (so a gauge never drifts
from the store): plans and executions by state, active freezes by type, the
policy in force, the signals' age, the event head, the audit chain, and the
in-process figures (stream subscribers, rate budgets, leases, restarts)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from govex_server.domain.clock import Clock
from govex_server.domain.execution.records import ExecutionState
from govex_server.domain.freezes import FreezeType
from govex_server.domain.governance import GovernanceMode
from govex_server.domain.plans import PlanState
from govex_server.domain.policy import PolicyMode
from govex_server.exchanges.rate_limit import OrderRateLimiter
from govex_server.services.audit import AuditLog
from govex_server.services.engine import ExecutionEngine
from govex_server.services.event_bus import EventBus
from govex_server.services.freezes import FreezeService
from govex_server.services.policy import PolicyService
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.metrics")


@dataclass
class Census:
    """One reading; ``store_up`` is False when the store could not be read
    (the in-process figures are still current)."""

    store_up: bool = False
    plans: Mapping[PlanState, int] = field(default_factory=dict)
    executions: Mapping[ExecutionState, int] = field(default_factory=dict)
    freezes: Mapping[FreezeType, int] = field(default_factory=dict)
    governance_mode: GovernanceMode | None = None
    policy_mode: PolicyMode | None = None
    policy_cap_daily: float = math.nan
    signal_age_seconds: float | None = None
    event_head: int = 0
    audit_intact: bool | None = None
    audit_head: int = 0
    subscribers: int = 0
    dropped_subscribers: int = 0
    budgets: Mapping[str, int] = field(default_factory=dict)
    leases_held: int = 0
    takeovers: int = 0
    leases_lost: int = 0
    restarts: int = 0
    paper_book_seconds: Mapping[str, float] = field(default_factory=dict)


@dataclass
class CensusTaker:
    """Reads a Census from the services it is given."""

    store: Store
    clock: Clock
    policy: PolicyService
    freezes: FreezeService
    bus: EventBus
    engine: ExecutionEngine
    audit: AuditLog
    limiters: Mapping[str, OrderRateLimiter]
    # CPU seconds of each paper account's simulated book, by account.
    paper_books: Callable[[], Mapping[str, float]] = dict

    async def take(self) -> Census:
        census = Census(
            subscribers=self.bus.subscriber_count,
            dropped_subscribers=self.bus.dropped_subscribers,
            budgets={a: lim.budget().remaining for a, lim in self.limiters.items()},
            leases_held=len(self.engine.leases.held),
            takeovers=self.engine.leases.takeovers,
            leases_lost=self.engine.leases.lost,
            restarts=self.engine.restarts,
            paper_book_seconds=self.paper_books(),
        )
        try:

            def unit(uow: UnitOfWork) -> None:
                census.plans = uow.plans.count_by_state()
                census.executions = uow.executions.count_by_state()
                census.governance_mode = uow.modes.get().mode
                census.event_head = uow.events.newest()

            await self.store.read(unit)
            view = await self.policy.view()
            active = await self.freezes.active()
            verdict = await self.audit.check_tail(quiet=True)
        except Exception as exc:
            # A scrape still answers (with store_up 0): the metrics are how
            # an operator finds out that the database is gone.
            log.warning("metrics: the store could not be read: %s", exc)
            return census
        census.store_up = True
        census.freezes = {kind: sum(f.type is kind for f in active) for kind in FreezeType}
        census.policy_mode = view.policy.mode
        census.policy_cap_daily = view.policy.cap_daily
        age = view.age
        census.signal_age_seconds = None if age is None else age.total_seconds()
        census.audit_intact = verdict.intact
        census.audit_head = verdict.count
        return census


class CensusCollector(Collector):
    """Serves the last Census taken (the exposition takes one per scrape)."""

    def __init__(self) -> None:
        self.census = Census()

    def collect(self) -> Iterator[Metric]:
        c = self.census
        yield _gauge("govex_store_up", "1 when the last scrape could read the store", c.store_up)
        yield _by(
            "govex_plans", "Plans by state", "state", {s.value: n for s, n in c.plans.items()}
        )
        yield _by(
            "govex_executions",
            "Executions by state",
            "state",
            {s.value: n for s, n in c.executions.items()},
        )
        yield _by(
            "govex_freezes_active",
            "Freezes in force now, by type",
            "type",
            {t.value: n for t, n in c.freezes.items()},
        )
        yield _one_of(
            "govex_governance_mode",
            "The governance mode (1 for the one in force)",
            "mode",
            [m.value for m in GovernanceMode],
            c.governance_mode.value if c.governance_mode else None,
        )
        yield _one_of(
            "govex_policy_mode",
            "The execution policy's mode (1 for the one in force)",
            "mode",
            [m.name for m in PolicyMode],
            c.policy_mode.name if c.policy_mode else None,
        )
        yield _gauge(
            "govex_policy_cap_daily_ratio",
            "The policy's daily turnover cap, as a fraction of the portfolio",
            c.policy_cap_daily,
        )
        if c.signal_age_seconds is not None:  # absent: no signals were ever published
            yield _gauge(
                "govex_signal_age_seconds", "Age of the signals in force", c.signal_age_seconds
            )
        yield _gauge(
            "govex_event_sequence_head", "The newest committed event sequence", c.event_head
        )
        if c.audit_intact is not None:
            yield _gauge(
                "govex_audit_chain_intact",
                "1 when the audit chain's newest records and head verify, 0 when broken",
                c.audit_intact,
            )
            yield _gauge("govex_audit_chain_head", "Audit records chained", c.audit_head)
        yield _gauge("govex_stream_subscribers", "Open event streams", c.subscribers)
        yield _counter(
            "govex_stream_subscribers_dropped",
            "Streams closed because their subscriber fell behind",
            c.dropped_subscribers,
        )
        yield _by(
            "govex_rate_budget_remaining",
            "Orders that may still be sent in the current window, by account",
            "account",
            dict(c.budgets),
        )
        yield _gauge("govex_leases_held", "Executions this replica owns", c.leases_held)
        yield _counter(
            "govex_lease_takeovers", "Executions taken over from a dead replica", c.takeovers
        )
        yield _counter("govex_leases_lost", "Leases this replica lost to another", c.leases_lost)
        yield _counter(
            "govex_runner_restarts", "Execution runners restarted after a failure", c.restarts
        )
        if c.paper_book_seconds:
            family = CounterMetricFamily(
                "govex_paper_book_cpu_seconds",
                "CPU time the paper exchange's simulated book has spent, by account: the "
                "simulated exchange's own cost, not govex's",
                labels=["account"],
            )
            for account, seconds in sorted(c.paper_book_seconds.items()):
                family.add_metric([account], seconds)
            yield family


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=float(value))


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=float(value))


def _by(name: str, text: str, label: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], float(value))
    return family


def _one_of(
    name: str, text: str, label: str, choices: list[str], current: str | None
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    if current:
        for choice in choices:
            family.add_metric([choice], 1.0 if choice == current else 0.0)
    return family
