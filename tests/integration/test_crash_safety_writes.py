"""Crash safety of group commit: the server is killed with SIGKILL 20 times
while 32 clients propose plans as fast as it answers. After each restart
every plan whose ProposePlan was answered OK is stored, and every stored plan
is whole (its audit record and its event with it): a batch cut by the kill
left all or nothing of each unit. The event sequence stays gap-free."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import grpc

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc
from tests.integration.test_crash_safety import until_up
from tests.server_process import ServerProcess
from tests.support import md

CYCLES = 20
CLIENTS = 32


def request(n: int) -> gov.ProposePlanRequest:
    r = gov.ProposePlanRequest(reason=f"crash {n}")
    r.targets.add(asset="BTC", weight_percent=60)
    r.targets.add(asset="USDT", weight_percent=40)
    return r


async def propose_until_killed(address: str, acknowledged: set[str], first: int) -> int:
    """Proposes from CLIENTS clients until the server dies; returns how many
    calls were answered OK."""
    answered = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = governance_service_pb2_grpc.GovernanceServiceStub(channel)
        await until_up(stub)

        async def client(c: int) -> None:
            nonlocal answered
            n = 0
            while True:
                n += 1
                try:
                    reply = await stub.ProposePlan(
                        request(first + c * 100_000 + n), metadata=md("alice"), timeout=10
                    )
                except grpc.RpcError:
                    return  # the server is gone
                acknowledged.add(reply.plan.name.split("/")[1])
                answered += 1

        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
    return answered


async def test_sigkill_during_batched_writes_keeps_every_unit_whole(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    rng = random.Random(3)
    acknowledged: set[str] = set()
    answered_per_cycle = []
    server.start()
    try:
        for cycle in range(CYCLES):
            before = len(acknowledged)
            load = asyncio.create_task(
                propose_until_killed(server.address, acknowledged, cycle * 10_000_000)
            )
            # Kill once writes are flowing, at a random moment of the burst.
            while len(acknowledged) < before + 20 and not load.done():
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            server.kill()
            answered_per_cycle.append(await load)
            server.start()
        async with grpc.aio.insecure_channel(server.address) as channel:
            await until_up(governance_service_pb2_grpc.GovernanceServiceStub(channel))
    finally:
        server.stop()
    assert all(n > 0 for n in answered_per_cycle), answered_per_cycle
    with sqlite3.connect(tmp_path / "govex.db") as db:
        plans = {row[0] for row in db.execute("SELECT id FROM plans")}
        audited = [
            row[0].split("/")[1]
            for row in db.execute("SELECT resource FROM audit_log WHERE rpc = 'ProposePlan'")
        ]
        evented = [
            row[0].split("/")[1]
            for row in db.execute("SELECT resource FROM events WHERE kind = 'PLAN_PROPOSED'")
        ]
        sequences = [row[0] for row in db.execute("SELECT sequence FROM events ORDER BY 1")]
        counter = db.execute("SELECT value FROM event_counter").fetchone()[0]
    lost = acknowledged - plans
    assert not lost, f"{len(lost)} acknowledged plans are missing, e.g. {sorted(lost)[:3]}"
    # Each unit whole: one audit record and one event per stored plan, and none
    # for a plan that is not stored.
    assert sorted(audited) == sorted(plans)
    assert sorted(evented) == sorted(plans)
    assert sequences == list(range(1, counter + 1))
