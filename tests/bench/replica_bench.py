"""Two replicas on one PostgreSQL database, 20 executions, the replica that
owns the most of them killed -9 (and restarted at once) every 5 s, until
every order due today has been sent or a minute and a half has passed;
against the same work on one replica never killed (the baseline, in the same
run).

Printed: orders sent twice (must be 0), the longest time an execution was
without a live owner (from the kill to the claim that replaced it), and the
orders per second of each run with their ratio. Verified in the store and
the paper book: nothing sent twice, every order on the exchange known to
the store and nothing left unresolved, after each execution is cancelled."""

from __future__ import annotations

import asyncio
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from tests.integration.replicas import (
    LEASE_SECONDS,
    Replicas,
    clone_execution,
    replicas_on,
    stubs,
)
from tests.integration.test_replicas import cancel, start_execution, until_ended
from tests.postgres import postgres_server

EXECUTIONS = 20
DUE_TODAY = 15  # orders of each execution due now (the rest wait for tomorrow)
KILL_EVERY = 5.0
LIMIT = 90.0
LATENCY_MS = 1000
SCALE = Decimal("0.05")
# An order budget that is not the limit.
BUDGET = {"GOVEX_MAX_ORDERS_PER_WINDOW": "1000"}


async def _prepare(r: Replicas) -> list[str]:
    r.a.start()
    name = await start_execution(r.a, dry_run=True)
    r.a.stop()  # the executions wait, unowned, for the measured run
    # Running copies of the dry run, each 1/20 of it: together inside the
    # account's daily cap, which all its executions share.
    return await clone_execution(r.database_url, name.split("/")[1], EXECUTIONS, SCALE)


async def _finish(r: Replicas, ids: list[str]) -> None:
    for execution_id in ids:
        await cancel(r.a, f"executions/{execution_id}")
        await until_ended(r, execution_id, within=300)
    await r.assert_all_settled_and_agreed()


async def _one_replica(tmp: Path, base_url: str) -> float:
    r = replicas_on(tmp, base_url, LATENCY_MS, env=BUDGET)
    try:
        ids = await _prepare(r)
        started = time.monotonic()
        r.a.start()
        while len(r.received()) < EXECUTIONS * DUE_TODAY and time.monotonic() - started < LIMIT:
            await asyncio.sleep(0.1)
        rate = len(r.received()) / (time.monotonic() - started)
        await _finish(r, ids)
        return rate
    finally:
        r.stop()


async def _two_replicas_killed(tmp: Path, base_url: str) -> tuple[float, float, int, int]:
    r = replicas_on(tmp, base_url, LATENCY_MS, env=BUDGET)
    try:
        ids = await _prepare(r)
        started = time.monotonic()
        r.a.start()
        r.b.start()
        async with stubs(r.b):
            pass
        kills, longest = 0, 0.0
        # Executions whose owner was killed: when, and the generation then.
        orphaned: dict[str, tuple[float, int]] = {}
        next_kill = time.monotonic() + KILL_EVERY
        while len(r.received()) < EXECUTIONS * DUE_TODAY and time.monotonic() - started < LIMIT:
            leases = await r.leases()
            now = time.monotonic()
            for execution_id, (killed_at, generation) in list(orphaned.items()):
                if leases[execution_id].generation > generation:
                    longest = max(longest, now - killed_at)
                    del orphaned[execution_id]
            if now >= next_kill:
                pids = [lease.pid for lease in leases.values() if lease.state == "RUNNING"]
                owner = max(r.both(), key=lambda s: pids.count(s.process.pid if s.process else 0))
                assert owner.process is not None
                for execution_id, lease in leases.items():
                    if lease.pid == owner.process.pid and lease.state == "RUNNING":
                        orphaned.setdefault(execution_id, (now, lease.generation))
                owner.kill()
                owner.start()
                kills += 1
                next_kill = now + KILL_EVERY
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        rate = len(r.received()) / elapsed
        twice = sum(1 for n in r.received().values() if n > 1)
        await _finish(r, ids)
        return rate, longest, kills, twice
    finally:
        r.stop()


def main() -> bool:
    # Kept afterwards: the replicas' logs are there (printed below).
    tmp = tempfile.mkdtemp(prefix="govex-replica-bench-")
    with postgres_server() as base_url:
        (Path(tmp) / "one").mkdir()
        (Path(tmp) / "two").mkdir()
        one = asyncio.run(_one_replica(Path(tmp) / "one", base_url))
        rate, longest, kills, twice = asyncio.run(_two_replicas_killed(Path(tmp) / "two", base_url))
    print(
        f"replicas: {EXECUTIONS} executions, lease {LEASE_SECONDS:g}s, owner killed -9 every "
        f"{KILL_EVERY:g}s ({kills} kills): orders sent twice {twice} (must be 0), longest "
        f"without an owner {longest:.1f}s (bound {LEASE_SECONDS * 4 / 3:.1f}s + claim), "
        f"{rate:.1f} orders/s vs one replica never killed {one:.1f} orders/s "
        f"({rate / one:.2f}x); verified: store = book, nothing unresolved; logs in {tmp}"
    )
    return twice == 0


if __name__ == "__main__":
    main()
