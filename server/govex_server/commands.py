"""What ``govex-server``'s commands run: serve (with its signal handling),
migrate, verify-audit."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from govex_server import heap
from govex_server.app import Running, start
from govex_server.config import Settings
from govex_server.domain.clock import Clock
from govex_server.services.audit import AuditLog
from govex_server.store.database import Store
from govex_server.store.migrate import at_head, migrate

log = logging.getLogger("govex.app")


async def serve(
    settings: Settings,
    clock: Clock | None = None,
    on_serving: Callable[[Running], None] | None = None,
) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully. The signal
    handlers are in place before start-up: a SIGTERM while reconciling stops
    the server gracefully once it is up, a SIGHUP then reloads the principals
    (by default either would kill the process). ``on_serving`` is called once
    the server answers (make run prints its instructions then)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[bool]] = set()
    started: list[Running] = []
    hup_while_starting = asyncio.Event()

    def reload_principals() -> None:
        if not started:
            hup_while_starting.set()
            return
        task = loop.create_task(started[0].principals.reload("SIGHUP"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload_principals)
    running = await start(settings, clock)
    started.append(running)
    # What start-up built lives as long as the process: out of the cycle
    # collector's way from now on (this process's, not an embedder's).
    heap.settle()
    if on_serving is not None:
        on_serving(running)
    if hup_while_starting.is_set():
        reload_principals()
    await stop.wait()
    log.info("shutting down (grace %.1fs)", settings.shutdown_grace_seconds)
    await running.stop(settings.shutdown_grace_seconds)
    log.info("stopped")


async def migrate_only(settings: Settings) -> None:
    """Applies the migrations and exits."""
    store = Store(settings.database_url)
    try:
        await migrate(store)
    finally:
        await store.close()


async def verify_audit(settings: Settings, out: Callable[[str], None]) -> int:
    """Walks the whole audit chain: 0 and its count and head hash when
    intact, 1 and the first broken link otherwise; changes nothing."""
    store = Store(settings.database_url)
    try:
        if not await at_head(store):
            out("the database is not migrated to this version: run govex-server migrate first")
            return 2
        verdict = await AuditLog(store).verify(
            lambda n: out(f"... {n} records verified") if n % 100_000 == 0 else None
        )
    finally:
        await store.close()
    if verdict.intact:
        out(f"audit chain intact: {verdict.count} records, head hash {verdict.head_hash}")
        return 0
    out(f"audit chain BROKEN at record {verdict.broken_at}: {verdict.problem}")
    out(f"({verdict.count} records before it verified)")
    return 1
