"""ExecutionService servicer. ValidatePlan and ListExchanges work; the rest
of the execution pipeline (issue 5) answers UNIMPLEMENTED, after
authentication and the role check, so the contract's security behaviour is
already real."""

from __future__ import annotations

from collections.abc import AsyncIterator

from govex.execution.v1 import execution_service_pb2 as pb
from govex.execution.v1 import execution_service_pb2_grpc as pb_grpc
from govex_server.api.auth import Authenticator
from govex_server.api.execution_convert import exchange_to_pb, level_from_pb, validation_to_pb
from govex_server.api.rpc import Context, not_built, stream, unary
from govex_server.domain.ids import parse_name
from govex_server.domain.principals import Principal
from govex_server.exchanges.base import ExchangeRegistry
from govex_server.services.planning import ExecutionPlanner

ISSUE = "execution pipeline: issue 5"


class ExecutionServicer(pb_grpc.ExecutionServiceServicer):
    """govex.execution.v1.ExecutionService."""

    def __init__(
        self, auth: Authenticator, planner: ExecutionPlanner, exchanges: ExchangeRegistry
    ) -> None:
        self.auth = auth
        self._planner = planner
        self._exchanges = exchanges

    @unary("ExecutePlan")
    async def ExecutePlan(
        self, request: pb.ExecutePlanRequest, principal: Principal
    ) -> pb.ExecutePlanResponse:
        raise not_built("ExecutionService.ExecutePlan", ISSUE)

    @unary("ValidatePlan")
    async def ValidatePlan(
        self, request: pb.ValidatePlanRequest, principal: Principal
    ) -> pb.ValidatePlanResponse:
        level = level_from_pb(request.safety_level)
        parse_name(request.plan, "plans", "plan")
        validation = await self._planner.validate(request.plan, request.exchange, level)
        return validation_to_pb(validation)

    @unary("CancelExecution")
    async def CancelExecution(
        self, request: pb.CancelExecutionRequest, principal: Principal
    ) -> pb.CancelExecutionResponse:
        raise not_built("CancelExecution", ISSUE)

    @unary("GetExecution")
    async def GetExecution(
        self, request: pb.GetExecutionRequest, principal: Principal
    ) -> pb.GetExecutionResponse:
        raise not_built("GetExecution", ISSUE)

    @unary("ListExecutions")
    async def ListExecutions(
        self, request: pb.ListExecutionsRequest, principal: Principal
    ) -> pb.ListExecutionsResponse:
        raise not_built("ListExecutions", ISSUE)

    @unary("ListOrders")
    async def ListOrders(
        self, request: pb.ListOrdersRequest, principal: Principal
    ) -> pb.ListOrdersResponse:
        raise not_built("ListOrders", ISSUE)

    @unary("ListExchanges")
    async def ListExchanges(
        self, request: pb.ListExchangesRequest, principal: Principal
    ) -> pb.ListExchangesResponse:
        return pb.ListExchangesResponse(
            exchanges=[exchange_to_pb(e) for e in self._exchanges.all()]
        )

    @unary("ConnectExchange")
    async def ConnectExchange(
        self, request: pb.ConnectExchangeRequest, principal: Principal
    ) -> pb.ConnectExchangeResponse:
        raise not_built("ConnectExchange", ISSUE)

    @stream("WatchOrders")
    async def WatchOrders(
        self, request: pb.WatchOrdersRequest, principal: Principal, context: Context
    ) -> AsyncIterator[pb.WatchOrdersResponse]:
        raise not_built("WatchOrders", ISSUE)
        yield  # pragma: no cover - makes this an async generator
