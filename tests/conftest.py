"""Fixtures: the test clock, real databases (SQLite file and a throwaway
PostgreSQL server), and the govex server in-process on a loopback port."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from govex.execution.v1 import execution_service_pb2_grpc
from govex.governance.v1 import governance_service_pb2_grpc
from govex_server.app import Running, start
from govex_server.config import Settings
from govex_server.domain.clock import ManualClock
from govex_server.store.database import Store
from govex_server.store.migrate import migrate
from tests.postgres import create_database, postgres_server
from tests.support import PRINCIPALS_FILE

# Servers started by the tests (in-process or as child processes) expose
# their metrics on a port of their own: several run at once.
os.environ["GOVEX_METRICS_LISTEN"] = "127.0.0.1:0"
os.environ["GOVEX_CONSOLE_LISTEN"] = "127.0.0.1:0"


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    """One PostgreSQL server for the whole run."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    """The test clock, at a fixed start time."""
    return ManualClock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db')}/govex.db"
    base: str = request.getfixturevalue("pg_base_url")
    return create_database(base, f"t_{uuid.uuid4().hex[:16]}")


class Harness:
    """The server running in this process, with stubs authenticated per call."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        self.settings = settings
        self.clock = clock
        self.running: Running | None = None
        self.channel: grpc.aio.Channel | None = None
        self.store = Store(settings.database_url)

    async def start(self) -> None:
        """Starts (or restarts) the server on a fresh port."""
        self.running = await start(self.settings, self.clock)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.running.port}")
        self.gov = governance_service_pb2_grpc.GovernanceServiceStub(self.channel)
        self.exe = execution_service_pb2_grpc.ExecutionServiceStub(self.channel)

    async def stop(self) -> None:
        """Stops the server as SIGTERM would."""
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
        if self.running is not None:
            try:
                await asyncio.wait_for(self.running.stop(0.5), 60)
            except TimeoutError:
                # Say where it hangs (pytest-timeout's thread dump shows only
                # the event loop waiting).
                for task in asyncio.all_tasks():
                    task.print_stack(limit=8)
                raise
            self.running = None

    async def restart(self) -> None:
        """Stop, then start on the same database."""
        await self.stop()
        await self.start()

    async def settle(self) -> None:
        """Waits until the background reactions to the last change (policy
        re-derivation after a freeze, the event bus) have happened."""
        assert self.running is not None
        running = self.running
        for _ in range(200):
            if not await running.policy.freezes_changed():
                newest = await running.store.read(lambda uow: uow.events.newest())
                if running.bus.current_sequence == newest:
                    await asyncio.sleep(0.05)
                    if not await running.policy.freezes_changed():
                        return
            await asyncio.sleep(0.02)
        raise AssertionError("background tasks did not settle")

    async def channel_idle(self, seconds: float) -> None:
        """Lets background tasks run for ``seconds`` of real time."""
        await asyncio.sleep(seconds)

    @property
    def target(self) -> str:
        """host:port of the running server."""
        assert self.running is not None
        return f"127.0.0.1:{self.running.port}"


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def harness_factory(
    database_url: str, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HarnessFactory]:
    """Starts servers on the test's database with setting overrides; several
    of them share the database (replicas) and the clock."""
    started: list[Harness] = []

    async def make(**overrides: Any) -> Harness:
        settings = replace(
            Settings(
                listen="127.0.0.1:0",
                metrics_listen="127.0.0.1:0",
                console_listen="127.0.0.1:0",
                database_url=database_url,
                principals_file=PRINCIPALS_FILE,
                cooldown_hours=24,
                # The paper exchange's own book, kept across restarts.
                paper_book_file=str(tmp_path / "paper-book.db"),
                # A restart on PostgreSQL is a takeover from the replica that
                # stopped: a short lease keeps it within a couple of seconds.
                lease_seconds=3,
            ),
            **overrides,
        )
        h = Harness(settings, clock)
        await h.start()
        started.append(h)
        return h

    try:
        yield make
    finally:
        for h in started:
            await h.stop()
            await h.store.close()


@pytest.fixture
async def harness(harness_factory: HarnessFactory) -> Harness:
    """A running server on a fresh database (each backend)."""
    return await harness_factory()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store on a fresh database (each backend)."""
    s = Store(database_url)
    await migrate(s)
    try:
        yield s
    finally:
        await s.close()
