"""Crash safety: the server is killed with SIGKILL at random moments during
executions and restarted, 12 times. Afterwards no client order id reached
the exchange twice, no order was lost, and no order on the exchange is
unknown to the store (start-up reconciliation adopts strays)."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from govex.execution.v1 import execution_pb2, execution_service_pb2_grpc
from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc, signals_pb2
from tests.server_process import ServerProcess
from tests.support import activated, md

CYCLES = 12
ASSETS = [f"A{i:02d}" for i in range(25)]


def write_paper_config(path: Path, latency_ms: int = 150, usdt: int = 1_000_000) -> None:
    prices = "\n".join(f"{a} = 100.0" for a in ASSETS)
    path.write_text(
        f'quote = "USDT"\nlatency_ms = {latency_ms}\n[balances]\nUSDT = {usdt}.0\n'
        f"[prices]\n{prices}\n"
    )


def server_for(tmp: Path) -> ServerProcess:
    write_paper_config(tmp / "paper.toml")
    return ServerProcess(
        tmp,
        {
            "GOVEX_PAPER_EXCHANGE_FILE": str(tmp / "paper.toml"),
            "GOVEX_PAPER_BOOK_FILE": str(tmp / "book.db"),
        },
    )


async def until_up(stubs: Any, who: str = "victor") -> None:
    for _ in range(300):
        try:
            await stubs.GetCooldownStatus(
                gov.GetCooldownStatusRequest(), metadata=md(who), timeout=2
            )
            return
        except grpc.RpcError:
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not come back")


async def execute_when_ready(x: Any, request: exe.ExecutePlanRequest, within: float = 60) -> Any:
    """ExecutePlan, retried while the restarted server still reconciles
    (UNAVAILABLE RECONCILING: reads are served before executions start)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await x.ExecutePlan(request, metadata=md("carol"))
        except grpc.aio.AioRpcError as exc:
            late = asyncio.get_running_loop().time() > deadline
            if exc.code() is not grpc.StatusCode.UNAVAILABLE or late:
                raise
            await asyncio.sleep(0.1)


async def until_none_live(x: Any, within: float = 60) -> None:
    """Waits (with a deadline) until no execution runs or is being cancelled."""
    deadline = asyncio.get_running_loop().time() + within
    live = [execution_pb2.EXECUTION_STATE_RUNNING, execution_pb2.EXECUTION_STATE_CANCELLING]
    while True:
        page = await x.ListExecutions(
            exe.ListExecutionsRequest(states=live), metadata=md("victor"), timeout=10
        )
        if not page.executions:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still live: {[e.name for e in page.executions]}")
        await asyncio.sleep(0.1)


async def setup_plan(g: Any, weight_percent: float = 3.2) -> str:
    as_of = timestamp_pb2.Timestamp()
    as_of.FromDatetime(datetime.now(UTC))
    await g.PublishSignals(
        gov.PublishSignalsRequest(
            signals=signals_pb2.SignalSet(
                as_of=as_of, confidence=0.9, contradiction_index=0.1, blended_score=80
            )
        ),
        metadata=md("model-7"),
    )
    request = gov.ProposePlanRequest(reason="crash test")
    for asset in ASSETS:
        request.targets.add(asset=asset, weight_percent=weight_percent)
    request.targets.add(asset="USDT", weight_percent=100 - weight_percent * len(ASSETS))
    plan = await activated(g, request)
    return str(plan.name)


async def test_sigkill_during_executions_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    server = server_for(tmp_path)
    server.start()
    rng = random.Random(7)
    executions: list[str] = []
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            g = governance_service_pb2_grpc.GovernanceServiceStub(channel)
            await until_up(g)
            plan_name = await setup_plan(g)
        for _ in range(CYCLES):
            async with grpc.aio.insecure_channel(server.address) as channel:
                g = governance_service_pb2_grpc.GovernanceServiceStub(channel)
                x = execution_service_pb2_grpc.ExecutionServiceStub(channel)
                await until_up(g)
                running = await x.ListExecutions(
                    exe.ListExecutionsRequest(states=[execution_pb2.EXECUTION_STATE_RUNNING]),
                    metadata=md("victor"),
                )
                for execution in running.executions:
                    await x.CancelExecution(
                        exe.CancelExecutionRequest(name=execution.name, reason="next cycle"),
                        metadata=md("carol"),
                        timeout=30,
                    )
                await until_none_live(x)  # CANCELLING holds the plan until it ends
                plan = (
                    await g.GetPlan(gov.GetPlanRequest(name=plan_name), metadata=md("victor"))
                ).plan
                started = await execute_when_ready(
                    x,
                    exe.ExecutePlanRequest(
                        plan=plan.name,
                        etag=plan.etag,
                        strategy=execution_pb2.EXECUTION_STRATEGY_PARALLEL,
                        max_parallel=4,
                    ),
                )
                executions.append(started.execution.name)
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            server.kill()
            server.start()
        async with grpc.aio.insecure_channel(server.address) as channel:
            await until_up(governance_service_pb2_grpc.GovernanceServiceStub(channel))
            x = execution_service_pb2_grpc.ExecutionServiceStub(channel)
            # The last execution is cancelled and ends: then every order it
            # has is final, and the checks below read a settled store.
            for name in executions[-1:]:
                try:
                    await x.CancelExecution(
                        exe.CancelExecutionRequest(name=name, reason="the end"),
                        metadata=md("carol"),
                        timeout=30,
                    )
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION  # it had ended
            await until_none_live(x)
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "book.db") as book:
        received = dict(book.execute("SELECT client_id, count FROM received"))
        on_exchange = {row[0] for row in book.execute("SELECT client_id FROM orders")}
    with sqlite3.connect(tmp_path / "govex.db") as store:
        stored = {
            row[0]: row[1] for row in store.execute("SELECT client_order_id, state FROM orders")
        }
    assert len(executions) == CYCLES
    assert received, "orders reached the exchange"
    twice = {cid: n for cid, n in received.items() if n > 1}
    assert not twice, f"client order ids sent twice: {json.dumps(twice)[:500]}"
    unknown = on_exchange - set(stored)
    assert not unknown, f"orders on the exchange unknown to the store: {sorted(unknown)[:10]}"
    for cid in on_exchange:
        assert stored[cid] not in ("PENDING",), cid
    live = {cid: state for cid, state in stored.items() if state in ("SUBMITTED", "UNKNOWN")}
    assert not live, f"orders left unresolved: {live}"
