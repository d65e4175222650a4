"""Several replicas on PostgreSQL: every execution has one owner (a lease in
the store), a dead or paused owner is replaced within its lease plus a
heartbeat, a stop sent to any replica reaches the owner, and no client order
id reaches the exchange twice. Real processes, a real PostgreSQL, one paper
book shared by both replicas."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import duration_pb2

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import governance_service_pb2 as gov
from tests.integration.replicas import (
    TAKEOVER_BOUND,
    WEIGHT_PERCENT,
    Lease,
    Replicas,
    clone_execution,
    replicas_on,
    stubs,
    until,
)
from tests.integration.test_crash_safety import setup_plan
from tests.server_process import ServerProcess
from tests.support import md

pytestmark = pytest.mark.postgres

LIVE = ("PENDING", "RUNNING", "CANCELLING")
KILLS = 10


async def start_execution(server: ServerProcess, dry_run: bool = False) -> str:
    """A sequential execution on ``server`` (which owns it): 15 orders due
    now, the rest tomorrow (each test cancels it in the end)."""
    async with stubs(server) as (g, x):
        plan_name = await setup_plan(g, WEIGHT_PERCENT)
        plan = (await g.GetPlan(gov.GetPlanRequest(name=plan_name), metadata=md("victor"))).plan
        started = await x.ExecutePlan(
            exe.ExecutePlanRequest(
                plan=plan.name,
                etag=plan.etag,
                strategy=execution_pb2.EXECUTION_STRATEGY_SEQUENTIAL,
                dry_run=dry_run,
            ),
            metadata=md("carol"),
        )
        return str(started.execution.name)


async def cancel(server: ServerProcess, name: str) -> None:
    async with stubs(server) as (_, x):
        await x.CancelExecution(
            exe.CancelExecutionRequest(name=name, reason="the test ends"), metadata=md("carol")
        )


async def serving(server: ServerProcess) -> None:
    async with stubs(server):
        pass


async def lease_of(r: Replicas, execution_id: str) -> Lease:
    return (await r.leases())[execution_id]


async def until_ended(r: Replicas, execution_id: str, within: float = 120) -> Lease:
    async def ended() -> Lease | None:
        lease = await lease_of(r, execution_id)
        return lease if lease.state not in LIVE else None

    ended_lease: Lease = await until(ended, within, f"execution {execution_id} ends")
    return ended_lease


async def until_sent(r: Replicas, count: int, within: float = 60) -> None:
    async def sent() -> bool:
        return len(r.received()) >= count

    await until(sent, within, f"{count} orders reach the book")


async def until_taken_over(r: Replicas, execution_id: str, before: Lease) -> Lease:
    """Another process than ``before``'s holds the lease, under a newer
    generation."""

    async def taken() -> Lease | None:
        now = await lease_of(r, execution_id)
        moved = now.generation > before.generation and now.pid not in (0, before.pid)
        return now if moved else None

    lease: Lease = await until(taken, TAKEOVER_BOUND + 10, "a takeover")
    return lease


async def running_with_a_standby(r: Replicas, sent: int) -> tuple[str, str]:
    """An execution started on ``a`` (its owner), ``b`` serving beside it,
    and ``sent`` of its orders on the exchange: its name and id."""
    r.a.start()
    name = await start_execution(r.a)
    r.b.start()
    await serving(r.b)
    if sent:
        await until_sent(r, sent)
    return name, name.split("/")[1]


async def full_freeze(g: Any, reason: str) -> None:
    """A FULL_FREEZE for an hour, by an operator."""
    ttl = duration_pb2.Duration()
    ttl.FromTimedelta(timedelta(hours=1))
    await g.Freeze(
        gov.FreezeRequest(type=freeze_pb2.FREEZE_TYPE_FULL_FREEZE, reason=reason, ttl=ttl),
        metadata=md("carol"),
    )


async def test_killing_the_owner_ten_times_sends_nothing_twice(
    tmp_path: Path, pg_base_url: str
) -> None:
    r = replicas_on(tmp_path, pg_base_url, latency_ms=1500)
    loop = asyncio.get_running_loop()
    takeovers: list[float] = []
    try:
        name, execution_id = await running_with_a_standby(r, sent=0)
        for _ in range(KILLS):
            lease = await lease_of(r, execution_id)
            assert lease.state in LIVE, "the execution ended before every kill was made"
            owner = r.by_pid(lease.pid)
            sent = len(r.received())
            killed_at = loop.time()
            owner.kill()
            owner.start()  # back at once: a standby for the next kill
            await until_taken_over(r, execution_id, lease)
            takeovers.append(loop.time() - killed_at)
            await r.assert_store_agrees_with_book(settled=False)
            r.assert_nothing_sent_twice()
            await until_sent(r, sent + 1)  # the new owner goes on
            await serving(owner)
        await until_sent(r, 15)  # every order due today
        await cancel(r.a, name)
        ended = await until_ended(r, execution_id)
    finally:
        r.stop()
    assert ended.state == "CANCELLED", ended
    await r.assert_all_settled_and_agreed()
    assert len(takeovers) == KILLS
    assert max(takeovers) <= TAKEOVER_BOUND, takeovers
    logs = r.a.logs() + r.b.logs()
    assert logs.count(f"execution {execution_id}: taken over from") >= KILLS


async def test_a_paused_owner_sends_nothing_after_it_wakes(
    tmp_path: Path, pg_base_url: str
) -> None:
    r = replicas_on(tmp_path, pg_base_url, latency_ms=1000)
    loop = asyncio.get_running_loop()
    try:
        name, execution_id = await running_with_a_standby(r, sent=2)
        lease = await lease_of(r, execution_id)
        owner = r.by_pid(lease.pid)
        standby = r.other(owner)
        paused_at = loop.time()
        owner.pause()
        taken = await until_taken_over(r, execution_id, lease)
        assert standby.process is not None and taken.pid == standby.process.pid
        sent = len(r.received())
        await until_sent(r, sent + 2)  # the standby goes on meanwhile

        # Paused longer than the book's recvWindow (5 s): a create request
        # the owner had on its way when it stopped arrives too late.
        async def past_the_window() -> bool:
            return loop.time() - paused_at > 7.0

        await until(past_the_window, 30, "the pause outlasts the recvWindow")
        assert "lease lost" not in owner.logs()
        owner.resume()

        async def woke() -> bool:
            return "lease lost" in owner.logs()

        await until(woke, 30, "the woken owner notices its lease is gone")
        await until_sent(r, 15)  # every order due today
        await cancel(owner, name)
        ended = await until_ended(r, execution_id)
    finally:
        r.stop()
    assert ended.state == "CANCELLED", ended
    # The woken replica never claimed it back, nor wrote or sent for it.
    assert ended.generation == taken.generation and ended.pid == taken.pid
    await r.assert_all_settled_and_agreed()


@pytest.mark.parametrize("stop", ["CancelExecution", "FULL_FREEZE"])
async def test_a_stop_sent_to_the_non_owner_stops_the_owner_within_a_second(
    tmp_path: Path, pg_base_url: str, stop: str
) -> None:
    r = replicas_on(tmp_path, pg_base_url, latency_ms=400)
    try:
        name, execution_id = await running_with_a_standby(r, sent=2)
        owner = r.by_pid((await lease_of(r, execution_id)).pid)
        async with stubs(r.other(owner)) as (g, x):
            if stop == "CancelExecution":
                await x.CancelExecution(
                    exe.CancelExecutionRequest(name=name, reason="from the other replica"),
                    metadata=md("carol"),
                )
            else:
                await full_freeze(g, "stop all")
            asked = datetime.now(UTC)
        ended = await until_ended(r, execution_id, within=60)
    finally:
        r.stop()
    assert ended.state == "CANCELLED", ended
    late = {
        cid: sent
        for cid, (_, _, sent) in (await r.stored_orders()).items()
        if sent is not None and sent > asked + timedelta(seconds=1)
    }
    assert not late, f"the owner went on sending after the stop: {late}"
    await r.assert_all_settled_and_agreed()


async def test_replicas_started_together_give_each_execution_one_owner(
    tmp_path: Path, pg_base_url: str
) -> None:
    r = replicas_on(tmp_path, pg_base_url, latency_ms=200)
    try:
        r.a.start()
        name = await start_execution(r.a)
        r.a.kill()  # its lease expires; nobody runs it
        original = name.split("/")[1]
        clones = await clone_execution(r.database_url, original, 4, Decimal("0.2"))
        r.a.start()
        r.b.start()
        for execution_id in clones:
            tag = execution_id[-12:]

            async def sent_for_it() -> bool:
                return any(tag in cid for cid in r.received())  # noqa: B023

            await until(sent_for_it, 60, f"{execution_id} sends")
        for execution_id in [original, *clones]:
            await cancel(r.a, f"executions/{execution_id}")
            await until_ended(r, execution_id)
    finally:
        r.stop()
    # The two replicas started together: each execution was claimed by one
    # of them only (a replica whose loop stalls past its deadline may claim
    # its own execution again; the other never took it).
    # (The first run of a created the original: its claim is not logged.)
    logs = {"a": r.a.logs(), "b": r.b.logs()}
    for execution_id in [original, *clones]:
        owners = {
            who
            for who, text in logs.items()
            if f"execution {execution_id}: claimed" in text
            or f"execution {execution_id}: taken over" in text
        }
        assert len(owners) == 1, (execution_id, owners)
    await r.assert_all_settled_and_agreed()


async def test_a_full_freeze_while_the_owner_is_dead_is_recorded_at_once(
    tmp_path: Path, pg_base_url: str
) -> None:
    r = replicas_on(tmp_path, pg_base_url, latency_ms=400)
    try:
        _, execution_id = await running_with_a_standby(r, sent=2)
        before = await lease_of(r, execution_id)
        owner = r.by_pid(before.pid)
        owner.kill()  # nobody runs it until its lease expires
        async with stubs(r.other(owner)) as (g, _):
            await full_freeze(g, "stop")

        async def cancelling() -> Lease | None:
            lease = await lease_of(r, execution_id)
            return lease if lease.state != "RUNNING" else None

        # Recorded by the replica that got the freeze, before any takeover.
        seen = await until(cancelling, 30, "the execution leaves RUNNING")
        assert seen.state == "CANCELLING" and seen.generation == before.generation, seen
        ended = await until_ended(r, execution_id, within=60)  # the new owner acts
    finally:
        r.stop()
    assert ended.state == "CANCELLED", ended
    await r.assert_all_settled_and_agreed()
