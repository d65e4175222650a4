"""ExecutionService servicer: proto in, engine call, proto out."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol, TypeVar

from govex.execution.v1 import exchange_pb2, execution_pb2
from govex.execution.v1 import execution_service_pb2 as pb
from govex.execution.v1 import execution_service_pb2_grpc as pb_grpc
from govex_server.api import convert
from govex_server.api.execution_convert import (
    details_to_pb,
    exchange_to_pb,
    execution_record_to_pb,
    level_from_pb,
    order_record_to_pb,
    validation_to_pb,
)
from govex_server.api.rpc import Context, mutation, stream, unary
from govex_server.api.streams import EventStreams
from govex_server.domain.errors import invalid_field
from govex_server.domain.events import EXECUTION_KINDS
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import ExecutionState, Strategy
from govex_server.domain.ids import parse_name
from govex_server.domain.principals import Principal
from govex_server.exchanges.base import ExchangeRegistry
from govex_server.services.accounts import AccountRequest, AccountService
from govex_server.services.engine import ExecuteRequest, ExecutionEngine, ExecutionView
from govex_server.services.exchange_views import ExchangeViews
from govex_server.services.governance import GovernanceService
from govex_server.services.planning import ExecutionPlanner
from govex_server.services.recorder import Call

ORDER_KINDS = frozenset(k.value for k in EXECUTION_KINDS)


def strategy_from_pb(value: int) -> Strategy:
    """SEQUENTIAL when unspecified; INVALID_ARGUMENT when unknown."""
    if value in (
        execution_pb2.EXECUTION_STRATEGY_UNSPECIFIED,
        execution_pb2.EXECUTION_STRATEGY_SEQUENTIAL,
    ):
        return Strategy.SEQUENTIAL
    if value == execution_pb2.EXECUTION_STRATEGY_PARALLEL:
        return Strategy.PARALLEL
    raise invalid_field("strategy", f"{value} is not SEQUENTIAL or PARALLEL")


E = TypeVar("E", bound=enum.Enum)


def _enum_list(values: list[int], wrapper: Any, prefix: str, kind: type[E], field: str) -> list[E]:
    """Known, specified proto enum values as domain values."""
    return [
        convert.enum_from_pb(wrapper, prefix, kind, value, f"{field}[{i}]")
        for i, value in enumerate(values)
    ]


class ExecutePlanFields(Protocol):
    """The fields of both ExecutePlan requests (ExecutionService's and
    GovernanceService's have the same numbers, names and types)."""

    @property
    def plan(self) -> str: ...

    @property
    def etag(self) -> str: ...

    @property
    def dry_run(self) -> bool: ...

    @property
    def strategy(self) -> int: ...

    @property
    def max_parallel(self) -> int: ...

    @property
    def exchange(self) -> str: ...

    @property
    def safety_level(self) -> int: ...


def execute_request(request: ExecutePlanFields) -> ExecuteRequest:
    """Either ExecutePlan request as the engine's ExecuteRequest: one
    operation behind both services."""
    parse_name(request.plan, "plans", "plan")
    return ExecuteRequest(
        plan=request.plan,
        etag=request.etag,
        dry_run=request.dry_run,
        strategy=strategy_from_pb(request.strategy),
        max_parallel=request.max_parallel,
        exchange=request.exchange,
        level=level_from_pb(request.safety_level),
    )


def view_to_pb(view: ExecutionView) -> execution_pb2.Execution:
    """The proto Execution of a view."""
    return execution_record_to_pb(view.execution, view.orders)


class ExecutionServicer(pb_grpc.ExecutionServiceServicer):
    """govex.execution.v1.ExecutionService."""

    def __init__(
        self,
        planner: ExecutionPlanner,
        exchanges: ExchangeRegistry,
        engine: ExecutionEngine,
        governance: GovernanceService,
        streams: EventStreams,
        accounts: AccountService,
    ) -> None:
        self._accounts = accounts
        self._views = ExchangeViews(exchanges)
        self._planner = planner
        self._exchanges = exchanges
        self._engine = engine
        self._governance = governance
        self._streams = streams

    @mutation(lambda self, view: pb.ExecutePlanResponse(execution=view_to_pb(view)))
    async def ExecutePlan(self, request: pb.ExecutePlanRequest, call: Call) -> ExecutionView:
        return await self._engine.execute(call.principal, execute_request(request), call)

    @unary
    async def ValidatePlan(
        self, request: pb.ValidatePlanRequest, principal: Principal
    ) -> pb.ValidatePlanResponse:
        level = level_from_pb(request.safety_level)
        parse_name(request.plan, "plans", "plan")
        validation = await self._planner.validate(request.plan, request.exchange, level)
        return validation_to_pb(validation)

    @mutation(lambda self, view: pb.CancelExecutionResponse(execution=view_to_pb(view)))
    async def CancelExecution(
        self, request: pb.CancelExecutionRequest, call: Call
    ) -> ExecutionView:
        return await self._engine.cancel(call.principal, request.name, request.reason, call)

    @unary
    async def GetExecution(
        self, request: pb.GetExecutionRequest, principal: Principal
    ) -> pb.GetExecutionResponse:
        return pb.GetExecutionResponse(execution=view_to_pb(await self._engine.get(request.name)))

    @unary
    async def ListExecutions(
        self, request: pb.ListExecutionsRequest, principal: Principal
    ) -> pb.ListExecutionsResponse:
        states = _enum_list(
            list(request.states),
            execution_pb2.ExecutionState,
            "EXECUTION_STATE_",
            ExecutionState,
            "states",
        )
        views, token = await self._engine.list_executions(
            states, request.plan, request.page_size, request.page_token, request.filter
        )
        return pb.ListExecutionsResponse(
            executions=[view_to_pb(v) for v in views], next_page_token=token
        )

    @unary
    async def ListOrders(
        self, request: pb.ListOrdersRequest, principal: Principal
    ) -> pb.ListOrdersResponse:
        states = _enum_list(
            list(request.states), execution_pb2.OrderState, "ORDER_STATE_", OrderState, "states"
        )
        orders, token = await self._engine.list_orders(
            request.parent, states, request.page_size, request.page_token, request.filter
        )
        return pb.ListOrdersResponse(
            orders=[order_record_to_pb(o) for o in orders], next_page_token=token
        )

    @unary
    async def GetExchange(
        self, request: pb.GetExchangeRequest, principal: Principal
    ) -> pb.GetExchangeResponse:
        details = await self._views.details(request.name)
        return details_to_pb(details, self._engine.budget(details.exchange.account))

    @unary
    async def ListExchanges(
        self, request: pb.ListExchangesRequest, principal: Principal
    ) -> pb.ListExchangesResponse:
        exchanges, token = self._views.list(request.page_size, request.page_token, request.filter)
        return pb.ListExchangesResponse(
            exchanges=[exchange_to_pb(e, self._engine.budget(e.account)) for e in exchanges],
            next_page_token=token,
        )

    @mutation(
        lambda self, exchange: pb.ConnectExchangeResponse(
            exchange=exchange_to_pb(exchange, self._engine.budget(exchange.account))
        )
    )
    async def ConnectExchange(self, request: pb.ConnectExchangeRequest, call: Call) -> Any:
        kinds = {exchange_pb2.EXCHANGE_KIND_PAPER: "paper", exchange_pb2.EXCHANGE_KIND_CCXT: "ccxt"}
        if request.kind not in kinds:
            raise invalid_field("kind", f"{request.kind} is not PAPER or CCXT")
        credentials = {
            "api_key": request.credentials.api_key,
            "secret": request.credentials.secret,
            "password": request.credentials.password,
        }
        account = AccountRequest(
            name=request.name,
            kind=kinds[request.kind],
            ccxt_id=request.ccxt_id,
            sandbox=request.sandbox,
            credentials={k: v for k, v in credentials.items() if v},
            quote=request.quote_currency,
            max_orders_per_window=request.max_orders_per_window,
        )
        return await self._accounts.connect(call.principal, account, call)

    @stream
    async def WatchOrders(  # type: ignore[override]
        self, request: pb.WatchOrdersRequest, principal: Principal, context: Context
    ) -> AsyncIterator[bytes]:
        prefix = ""
        if request.execution:
            # Its orders ("executions/{id}/orders/...") and itself (ids have
            # one length: no other execution's name starts with this one's).
            prefix = f"executions/{parse_name(request.execution, 'executions', 'execution')}"
        async for frame in self._streams.stream(
            request.after_sequence,
            ORDER_KINDS,
            _order_heartbeat,
            request.from_oldest,
            prefix,
        ):
            yield frame


def _order_heartbeat(sequence: int, now: datetime) -> bytes:
    beat = execution_pb2.OrderStreamHeartbeat(
        current_sequence=sequence, time=convert.timestamp(now)
    )
    return pb.WatchOrdersResponse(heartbeat=beat).SerializeToString()
