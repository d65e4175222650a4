"""ProposePlan with a unique request_id on every call against the same load
without one, both from one Python grpc.aio client (h2load sends one body, so
it cannot vary the request_id). The ratio is the cost of idempotency: the
stored first response, written in the same unit of work as the plan."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc

CALLS = 3000
CONCURRENCY = 64


@dataclass(frozen=True)
class Result:
    """Both halves of the run."""

    without_ids: float
    with_ids: float
    writes: int
    summary: str


def _request(request_id: str) -> gov.ProposePlanRequest:
    request = gov.ProposePlanRequest(reason="bench ids", request_id=request_id)
    for asset, weight in (("BTC", 50.0), ("ETH", 20.0), ("USDT", 30.0)):
        request.targets.add(asset=asset, weight_percent=weight)
    return request


async def _load(address: str, tag: str) -> tuple[float, int]:
    metadata = (("authorization", "Bearer dev-alice-token"),)
    ok = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = governance_service_pb2_grpc.GovernanceServiceStub(channel)
        requests = [_request(f"{tag}-{i}" if tag else "") for i in range(CALLS)]
        queue = iter(requests)

        async def worker() -> None:
            nonlocal ok
            for request in queue:
                await stub.ProposePlan(request, metadata=metadata, timeout=60)
                ok += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return CALLS / (time.perf_counter() - started), ok


def run(address: str) -> Result:
    """Both loads, one after the other; every call must succeed."""
    without, ok_without = asyncio.run(_load(address, ""))
    with_ids, ok_with = asyncio.run(_load(address, f"bench-{time.time_ns()}"))
    assert ok_without == ok_with == CALLS, (ok_without, ok_with)
    summary = (
        f"ProposePlan from one Python client, {CALLS} calls x {CONCURRENCY} concurrent: "
        f"without request_id {without:,.0f} req/s; a unique request_id each {with_ids:,.0f} "
        f"req/s; ratio {with_ids / without:.2f}"
    )
    return Result(without, with_ids, 2 * CALLS, summary)
