"""The server's Prometheus metrics.

One registry per server (tests run several servers in one process). Counts
and latencies are fed by the cross-cutting layers, each in one place: the
interceptor (every RPC), the store (every transaction), the exchange wrapper
(every exchange call) and the committed-events observer (every order
transition). What is state rather than a count (plans by state, freezes,
policy, budgets...) is read at scrape time by the census (census.py), so a
gauge never drifts from the store."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
)

# Seconds: from a cached read (~100 µs) to a slow exchange (10 s).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Units of work per committed transaction (the group commit's batch).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The instruments; ``registry`` is what the exposition serves."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # The process itself (resident memory, CPU, open files) and its
        # cycle collector (collections by generation): read at scrape time.
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        self.rpc_requests = Counter(
            "govex_rpc_requests",
            "RPCs answered, by method and gRPC status code (streams counted when they end)",
            ["rpc", "code"],
            registry=registry,
        )
        self.rpc_seconds = Histogram(
            "govex_rpc_duration_seconds",
            "Time to answer a unary RPC, by method",
            ["rpc"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.order_updates = Counter(
            "govex_order_updates",
            "Order changes recorded, by exchange account and the state after the change: "
            "SUBMITTED counts orders sent, FILLED orders filled, REJECTED orders the "
            "exchange refused (PARTIALLY_FILLED counts every fill report)",
            ["account", "state"],
            registry=registry,
        )
        self.exchange_seconds = Histogram(
            "govex_exchange_call_duration_seconds",
            "Exchange calls (create_order, fetch_order, ...), by account and call",
            ["account", "call"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.exchange_errors = Counter(
            "govex_exchange_errors",
            "Exchange calls that failed, by account, call and error class",
            ["account", "call", "error"],
            registry=registry,
        )
        self.store_seconds = Histogram(
            "govex_store_transaction_duration_seconds",
            "Write transactions, from the first statement to the end of the commit",
            ["dialect"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.store_batch = Histogram(
            "govex_store_batch_units",
            "Units of work committed together in one transaction (SQLite group commit)",
            ["dialect"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )

        self.console_actions = Counter(
            "govex_console_actions",
            "Console actions (plan steps, freezes, cancels), by the RPC they are and the "
            "outcome: OK, REPLAYED (a form sent twice) or the refusal's reason",
            ["rpc", "outcome"],
            registry=registry,
        )
        self.console_sign_ins = Counter(
            "govex_console_sign_ins",
            "Console sign-ins by outcome: ok, refused (unknown token), throttled (too many "
            "failures from one address), forged (no CSRF token)",
            ["outcome"],
            registry=registry,
        )

    def transaction(self, dialect: str, seconds: float, units: int) -> None:
        """One committed (or failed) write transaction of ``units`` units."""
        self.store_seconds.labels(dialect).observe(seconds)
        self.store_batch.labels(dialect).observe(units)
