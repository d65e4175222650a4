"""Calls used by the integration tests (through the generated stubs)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from govex_client.errors import GovexRpcError
from tests.conftest import Harness
from tests.support import md

DEFAULT_TARGETS = (("BTC", 50.0), ("ETH", 20.0), ("USDT", 30.0))


async def refused(call: Awaitable[Any]) -> GovexRpcError:
    """The decoded error of a call that must fail."""
    try:
        await call
    except grpc.RpcError as exc:
        return GovexRpcError.from_rpc_error(exc)
    raise AssertionError("the call succeeded but should have been refused")


async def propose(
    h: Harness,
    who: str = "alice",
    targets: tuple[tuple[str, float], ...] = DEFAULT_TARGETS,
    **fields: Any,
) -> plan_pb2.Plan:
    request = gov.ProposePlanRequest(**fields)
    for asset, weight in targets:
        request.targets.add(asset=asset, weight_percent=weight)
    response = await h.gov.ProposePlan(request, metadata=md(who))
    return response.plan


async def review(h: Harness, plan: plan_pb2.Plan, who: str = "bob") -> plan_pb2.Plan:
    response = await h.gov.ReviewPlan(
        gov.ReviewPlanRequest(name=plan.name, etag=plan.etag, comment="looks fine"),
        metadata=md(who),
    )
    return response.plan


async def approve(h: Harness, plan: plan_pb2.Plan, who: str = "bob") -> plan_pb2.Plan:
    response = await h.gov.ApprovePlan(
        gov.ApprovePlanRequest(name=plan.name, etag=plan.etag), metadata=md(who)
    )
    return response.plan


async def activate(
    h: Harness, plan: plan_pb2.Plan, who: str = "carol", **fields: Any
) -> gov.ActivatePlanResponse:
    response: gov.ActivatePlanResponse = await h.gov.ActivatePlan(
        gov.ActivatePlanRequest(name=plan.name, etag=plan.etag, **fields), metadata=md(who)
    )
    return response


async def approved_plan(h: Harness, who: str = "alice") -> plan_pb2.Plan:
    return await approve(h, await review(h, await propose(h, who)))
