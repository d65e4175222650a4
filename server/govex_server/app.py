"""Composition root: builds the store, services and gRPC server, and runs them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from govex.execution.v1 import execution_service_pb2
from govex.governance.v1 import governance_service_pb2
from govex_server.api.auth import Authenticator
from govex_server.api.event_codec import encode_event
from govex_server.api.execution import ExecutionServicer
from govex_server.api.governance import GovernanceServicer
from govex_server.api.interceptor import GovexInterceptor
from govex_server.api.reflection import DocumentedReflection, documented_files, protoset_bytes
from govex_server.api.registration import register
from govex_server.api.stream_limits import StreamLimits
from govex_server.api.streams import EventStreams, event_frame
from govex_server.api.transport import SERVER_OPTIONS, server_credentials
from govex_server.app_execution import build_execution, paper_book_seconds
from govex_server.config import (
    DEFAULT_DATABASE_URL,
    ConfigError,
    Settings,
    is_loopback,
    load_principals,
)
from govex_server.console.serve import ConsoleServer
from govex_server.domain.clock import Clock, SystemClock
from govex_server.domain.events import EventKind
from govex_server.domain.principals import Principal
from govex_server.exchanges.base import ExchangeRegistry
from govex_server.observability.activity import Activity
from govex_server.observability.census import CensusTaker
from govex_server.observability.exposition import Exposition
from govex_server.observability.metrics import Metrics
from govex_server.services.audit import AuditLog
from govex_server.services.bounds import PolicyBounds
from govex_server.services.engine import ExecutionEngine
from govex_server.services.event_bus import EventBus
from govex_server.services.expiry import FreezeExpirer
from govex_server.services.freezes import FREEZE_KINDS_STORED, FreezeService
from govex_server.services.governance import GovernanceService
from govex_server.services.idempotency import IdempotencyKeys
from govex_server.services.policy import PolicyService
from govex_server.services.policy_timer import PolicyTimer
from govex_server.services.principals_reload import PrincipalsReloader
from govex_server.services.recorder import Recorder
from govex_server.services.retention import EventRetention
from govex_server.store.database import Store
from govex_server.store.file_lock import DatabaseLock, lock_database
from govex_server.store.migrate import migrate

if TYPE_CHECKING:
    from govex_server.console.context import ConsoleServices
    from govex_server.store.listener import ChangeListener

log = logging.getLogger("govex.app")

GOVERNANCE = governance_service_pb2.DESCRIPTOR.services_by_name["GovernanceService"]
EXECUTION = execution_service_pb2.DESCRIPTOR.services_by_name["ExecutionService"]
SERVICE_NAMES = (GOVERNANCE.full_name, EXECUTION.full_name)
# Methods that hand gRPC bytes already serialized (one encoding shared by
# every subscriber or every caller).
PRESERIALIZED = frozenset({"WatchFreezeEvents", "WatchGovernanceEvents", "GetGovernanceState"})


@dataclass
class Running:
    """A started server: its port, its parts (for tests) and how to stop it."""

    server: grpc.aio.Server
    health: health.HealthServicer
    store: Store
    port: int
    bus: EventBus
    freezes: FreezeService
    expirer: FreezeExpirer
    retention: EventRetention
    listener: ChangeListener | None
    tasks: list[asyncio.Task[None]]
    policy: PolicyService
    engine: ExecutionEngine
    exchanges: ExchangeRegistry
    auth: Authenticator
    principals: PrincipalsReloader
    limits: StreamLimits
    audit: AuditLog
    keys: IdempotencyKeys
    metrics: Metrics
    exposition: Exposition | None = None
    console: ConsoleServer | None = None
    db_lock: DatabaseLock | None = None

    async def stop(self, grace: float) -> None:
        """NOT_SERVING first (load balancers drain), streams told to resume
        elsewhere, then a graceful stop of the unary calls in flight."""
        for name in ("", *SERVICE_NAMES):
            await _set_health(self.health, name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.bus.close_all()
        await self.server.stop(grace)
        if self.exposition is not None:
            await self.exposition.stop()
        if self.console is not None:
            await self.console.stop()
        await self.engine.stop()
        await _close_exchanges(self.exchanges)
        for task in self.tasks:
            task.cancel()
        # A task stuck in I/O must not keep the process from exiting.
        _, stuck = await asyncio.wait(self.tasks, timeout=10) if self.tasks else (set(), set())
        for task in stuck:
            log.error("background task %s did not stop", task.get_name())
        await self.bus.stop()
        await asyncio.wait_for(self.store.close(), 10)
        if self.db_lock is not None:
            self.db_lock.release()


async def _close_exchanges(exchanges: ExchangeRegistry) -> None:
    """Exchange sessions (ccxt's HTTP pools, the paper book) close with the
    server; one that fails to close is logged, not left to stop the rest."""
    for exchange in exchanges.all():
        close = getattr(exchange, "close", None)
        if close is None:
            continue
        try:
            result = close()
            if asyncio.iscoroutine(result):
                await asyncio.wait_for(result, 10)
        except Exception:
            log.exception("exchange %s did not close", exchange.account)


async def _set_health(
    servicer: health.HealthServicer,
    name: str,
    status: health_pb2.HealthCheckResponse.ServingStatus.ValueType,
) -> None:
    result = servicer.set(name, status)
    if asyncio.iscoroutine(result):
        await result


async def start(settings: Settings, clock: Clock | None = None) -> Running:
    """Migrates the database, builds everything and starts serving."""
    settings.validate()  # also when embedded without load_settings
    clock = clock or SystemClock()
    principals = load_principals(settings.principals_file)
    _default_directory(settings)
    # Before anything is read or written: a second server on this SQLite
    # file stops here, having reconciled and sent nothing.
    db_lock = lock_database(settings.database_url)
    store = Store(settings.database_url, encode_event)
    metrics = Metrics()
    store.on_transaction(metrics.transaction)
    store.on_events(Activity(metrics).committed)
    exposition: Exposition | None = None
    console: ConsoleServer | None = None
    tasks: list[asyncio.Task[None]] = []
    retention_of_ids = timedelta(hours=settings.request_id_retention_hours)
    recorder = Recorder(retention_of_ids)
    credentials = server_credentials(settings)
    bound: grpc.aio.Server | None = None
    try:
        await _reach_database(store, settings.database_url)
        audit = AuditLog(store)
        await audit.check_tail()
        policy = PolicyService(
            store,
            clock,
            settings.policy_settings(),
            settings.phase,
            timedelta(seconds=settings.signals_future_skew_seconds),
            recorder=recorder,
        )
        governance = GovernanceService(
            store,
            clock,
            timedelta(hours=settings.cooldown_hours),
            PolicyBounds(policy, clock),
            recorder=recorder,
        )
        freezes = FreezeService(store, clock, policy.rederive_in, recorder=recorder)
        keys = IdempotencyKeys(store, clock, retention_of_ids)
        bus = EventBus(
            store,
            event_frame,
            settings.subscriber_queue_size,
            settings.event_poll_seconds,
            settings.heartbeat_seconds,
            clock.now,
        )
        store.on_events(bus.publish)
        expirer = FreezeExpirer(freezes, clock)
        store.on_change(expirer.poke, FREEZE_KINDS_STORED)
        policy_timer = PolicyTimer(policy, clock)
        store.on_change(
            policy_timer.poke, FREEZE_KINDS_STORED | {EventKind.SIGNALS_PUBLISHED.value}
        )
        retention = EventRetention(
            store,
            clock,
            timedelta(hours=settings.event_retention_hours),
            settings.event_retention_keep,
            timedelta(minutes=5),
        )
        listener = None
        if not store.is_sqlite:

            def caches(listening: bool) -> None:
                governance.read_cache.enable(listening)
                policy.read_cache.enable(listening)
                freezes.read_cache.enable(listening)

            def other_replica_wrote() -> None:
                store.changed()
                bus.poke()

            from govex_server.store.listener import ChangeListener

            listener = ChangeListener(settings.database_url, other_replica_wrote, caches)
        # Freezes that expired while we were down end (with their events)
        # before the first request is served.
        await freezes.expire_due()
        await bus.start()
        for name, body in (
            ("freeze-expiry", expirer.run()),
            ("event-retention", retention.run()),
            ("policy-timer", policy_timer.run()),
            ("request-id-retention", keys.run(timedelta(minutes=10))),
            *((("pg-listen", listener.run()),) if listener else ()),
        ):
            tasks.append(asyncio.create_task(body, name=name))
        streams = EventStreams(bus, clock.now)
        exchanges, planner, engine, accounts = build_execution(
            settings, clock, store, governance, policy, freezes, recorder, metrics
        )
        store.on_change(engine.on_freeze_created, frozenset({EventKind.FREEZE_CREATED.value}))
        store.on_change(
            engine.on_executions_changed, frozenset({EventKind.EXECUTION_UPDATED.value})
        )
        await accounts.load()
        auth = Authenticator(principals)
        reloader = PrincipalsReloader(
            store,
            clock,
            recorder,
            lambda: _reload_principals(settings.principals_file),
            auth.replace,
            principals,
        )
        if settings.principals_reload_seconds:
            tasks.append(
                asyncio.create_task(
                    reloader.run(settings.principals_reload_seconds), name="principals-reload"
                )
            )
        limits = StreamLimits(
            settings.max_streams_per_connection, settings.max_streams_per_principal
        )
        server = grpc.aio.server(
            options=SERVER_OPTIONS, interceptors=[GovexInterceptor(auth, keys, limits, metrics)]
        )
        register(
            server,
            GovernanceServicer(governance, freezes, streams, policy, engine, audit, clock),
            GOVERNANCE,
            PRESERIALIZED,
        )
        register(
            server,
            ExecutionServicer(planner, exchanges, engine, governance, streams, accounts),
            EXECUTION,
            frozenset({"WatchOrders"}),
        )
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            DocumentedReflection(
                (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME),
                documented_files(protoset_bytes()),
            ),
            server,
        )
        try:
            if credentials is None:
                port = server.add_insecure_port(settings.listen)
            else:
                port = server.add_secure_port(settings.listen, credentials)
        except RuntimeError:  # grpcio: "Failed to bind to address"
            port = 0
        if port == 0:
            raise ConfigError(
                f"listen: cannot listen on {settings.listen} (in use, or not an address "
                "of this machine)"
            )
        # The port is bound, and says NOT_SERVING, while open orders are
        # reconciled and executions resumed (ExecutePlan answers UNAVAILABLE
        # RECONCILING meanwhile); a port in use fails before any of that.
        for name in ("", *SERVICE_NAMES):
            await _set_health(health_servicer, name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.start()
        bound = server
        if settings.metrics_listen:
            exposition = Exposition(
                metrics,
                CensusTaker(
                    store,
                    clock,
                    policy,
                    freezes,
                    bus,
                    engine,
                    audit,
                    engine.limiters,
                    lambda: paper_book_seconds(exchanges),
                ),
            )
            try:
                await exposition.start(settings.metrics_listen)
            except OSError as exc:
                raise ConfigError(
                    f"metrics_listen: cannot listen on {settings.metrics_listen}: "
                    f"{exc.strerror or exc}"
                ) from None
        if settings.console_listen:
            # Imported only when the console is on (Starlette, Jinja2, uvicorn).
            from govex_server.console.context import ConsoleServices

            services = ConsoleServices(
                auth,
                governance,
                freezes,
                policy,
                streams,
                keys,
                engine,
                audit,
                planner,
                metrics,
                clock,
            )
            console = await _start_console(settings, services)
        await engine.start()
    except BaseException:
        if console is not None:
            await console.stop()
        if exposition is not None:
            await exposition.stop()
        if bound is not None:
            await bound.stop(0)
        for task in tasks:
            task.cancel()
        await store.close()
        if db_lock is not None:
            db_lock.release()
        raise
    for name in ("", *SERVICE_NAMES):
        await _set_health(health_servicer, name, health_pb2.HealthCheckResponse.SERVING)
    host = settings.listen.rpartition(":")[0]
    transport = "mTLS" if settings.tls_client_ca_file else "TLS" if settings.tls else "plaintext"
    if not settings.tls and not is_loopback(host):
        log.warning(
            "serving WITHOUT TLS on %s (allow_insecure): bearer tokens and exchange secrets "
            "cross the network in clear text",
            host,
        )
    log.info("govex serving on %s:%d (%s, database %s)", host, port, transport, store.dialect)
    return Running(
        server,
        health_servicer,
        store,
        port,
        bus,
        freezes,
        expirer,
        retention,
        listener,
        tasks,
        policy,
        engine,
        exchanges,
        auth,
        reloader,
        limits,
        audit,
        keys,
        metrics,
        exposition,
        console,
        db_lock,
    )


async def _start_console(settings: Settings, services: ConsoleServices) -> ConsoleServer:
    """The operator console on console_listen, over the same services."""
    from govex_server.console.app import Console

    server = ConsoleServer(settings)
    await server.start(Console(services).app(server.secret, https=settings.tls))
    return server


def _default_directory(settings: Settings) -> None:
    """The one directory the server creates: its default database's (an
    explicit path's directory must exist, config.py)."""
    if settings.database_url == DEFAULT_DATABASE_URL:
        Path("var").mkdir(exist_ok=True)


async def _reach_database(store: Store, url: str) -> None:
    """Migrates; a database that cannot be reached is one line naming the
    setting (its address, never its password), not a driver's traceback."""
    try:
        await migrate(store)
    except (OSError, TimeoutError, DBAPIError) as exc:
        where = make_url(url).render_as_string(hide_password=True)
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        raise ConfigError(
            f"database_url: cannot use the database at {where}: {cause}".splitlines()[0]
        ) from None


def _reload_principals(path: str) -> dict[str, Principal]:
    try:
        return load_principals(path)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
